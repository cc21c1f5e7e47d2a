"""The federation's data plan and each participant's local work, free of any Flower object.

Both the Flower ClientApp (``clients/``) and the plain in-process loop used by benchmarks and tests
call :class:`Participant`, so the simulation and the reference loop do exactly the same work.
Datasets, windows and normalisers are cached per process: a simulated node (a Ray actor) serves
many participants and rounds but decodes the data once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from types import MappingProxyType

import numpy as np
import torch

from fl_har.config import ConfigError, DataConfig, ExperimentConfig
from fl_har.data import HARDataset, Normalizer, Windows, fit_normalizer, load_dataset, make_sampler
from fl_har.data import subject_windows as _subject_windows
from fl_har.data.errors import DataError
from fl_har.data.units import ClientUnits, split_into_units
from fl_har.data.windowing import stride_for
from fl_har.ldp import LDPConfig
from fl_har.models import HARModel, build_model
from fl_har.seeding import Stream, derive_seed, stream_rng
from fl_har.training import LocalTrainingConfig, LocalUpdate, local_update

# (normalised windows, labels, their indices into the subject's windows) -> (windows, labels)
BatchTransform = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _dataset_key(data: DataConfig, seed: int) -> tuple:
    # The synthetic generator is seeded by the run seed so a run is one deterministic world.
    # Held subjects stay whole when clients are recordings or sessions (fl_har.data.units).
    whole = tuple(sorted({*data.server_subjects, *data.eval_subjects}))
    return (data.dataset, data.root, data.channels, data.synthetic_subjects, seed,
            data.client_unit, data.session_minutes, whole)


@lru_cache(maxsize=4)
def _load_subjects(key: tuple) -> HARDataset:
    dataset, root, channels, synthetic_subjects, seed = key
    if dataset == "hapt":
        return load_dataset("hapt", channels=channels)
    if dataset == "synthetic":
        return load_dataset("synthetic", num_subjects=synthetic_subjects, seed=seed)
    return load_dataset(dataset, root=root or None)


@lru_cache(maxsize=4)
def _units(key: tuple) -> ClientUnits:
    *source, unit, minutes, whole = key
    dataset = _load_subjects(tuple(source))  # its own errors name the data, not the unit
    try:
        return split_into_units(dataset, unit, keep_whole=whole, session_minutes=minutes)
    except DataError as error:
        raise ConfigError(f"data.client_unit = {unit!r}: {error}") from None


def _load(key: tuple) -> HARDataset:
    return _units(key).dataset


def client_units(config: ExperimentConfig) -> ClientUnits:
    """The run's clients as units of subjects (``data.client_unit``), with each unit's origin."""
    return _units(_dataset_key(config.data, config.run.seed))


def dataset_for(config: ExperimentConfig) -> HARDataset:
    """The run's dataset (decoded once per process)."""
    return _load(_dataset_key(config.data, config.run.seed))


@lru_cache(maxsize=64)
def _windows(key: tuple, subject: int, window: int, overlap: float) -> Windows:
    return _subject_windows(_load(key), subject, window=window, overlap=overlap)


def windows_for(config: ExperimentConfig, subject: int) -> Windows:
    """All windows of one subject, in recording order (cached per process)."""
    data = config.data
    return _windows(_dataset_key(data, config.run.seed), subject, data.window, data.overlap)


@dataclass(frozen=True)
class FederationPlan:
    """Who is a client, what the server holds, and how participants map to simulation partitions.

    Partition ``i`` of the simulation is ``subjects[i]``, the ``i``-th participant of the dataset
    (a subject, or a unit of one when ``data.client_unit`` is ``recording`` or ``session``), so
    one simulation serves experiments with any subset of subjects as clients. ``owners`` maps each
    unit to its subject (empty when every client is a whole subject).
    """

    subjects: tuple[int, ...]
    clients: tuple[int, ...]
    server_subjects: tuple[int, ...]
    eval_subjects: tuple[int, ...]
    num_classes: int
    num_channels: int
    class_names: tuple[str, ...]
    owners: Mapping[int, int] = field(default_factory=dict, compare=False)

    def partition(self, subject: int) -> int:
        """The simulation partition id that serves ``subject``."""
        return self.subjects.index(subject)

    def owner(self, client: int) -> int:
        """The subject whose data a client holds (itself unless clients are units)."""
        return self.owners.get(client, client)


def federation_plan(config: ExperimentConfig, dataset: HARDataset | None = None) -> FederationPlan:
    """Resolve ``data.clients = "all"`` (or subject ids) into the run's clients (subjects, or their
    units, see ``data.client_unit``) and check every subject id exists in the dataset."""
    data = config.data
    units = client_units(config) if data.client_unit != "subject" else None
    if units is not None:
        dataset = units.dataset
        known = {info.subject for info in units.origin.values()}
    else:
        dataset = dataset if dataset is not None else dataset_for(config)
        known = set(dataset.subjects)
    for field_name in ("server_subjects", "eval_subjects"):
        missing = sorted(set(getattr(data, field_name)) - known)
        if missing:
            raise ConfigError(
                f"data.{field_name}: subjects {missing} are not in dataset {dataset.name!r} "
                f"(subjects: {min(known)}..{max(known)})"
            )
    if data.clients == "all":
        held = set(data.server_subjects) | set(data.eval_subjects)
        subjects = tuple(s for s in sorted(known) if s not in held)
    else:
        missing = sorted(set(data.clients) - known)
        if missing:
            raise ConfigError(
                f"data.clients: subjects {missing} are not in dataset {dataset.name!r} "
                f"(subjects: {min(known)}..{max(known)})"
            )
        subjects = tuple(data.clients)
    if units is not None:
        clients = units.units_of(subjects)
        owners = MappingProxyType({u: info.subject for u, info in units.origin.items()
                                   if info.recording != -1})
    else:
        clients, owners = subjects, MappingProxyType({})
    if not clients:
        raise ConfigError("data.clients: no subject is left to be a client")
    return FederationPlan(
        subjects=tuple(dataset.subjects),
        clients=clients,
        server_subjects=tuple(data.server_subjects),
        eval_subjects=tuple(data.eval_subjects),
        num_classes=dataset.num_classes,
        num_channels=dataset.num_channels,
        class_names=tuple(dataset.class_names),
        owners=owners,
    )


def check_client_windows(config: ExperimentConfig, plan: FederationPlan) -> None:
    """A :class:`ConfigError` naming the first client with fewer windows than one batch of
    ``client.batch_size`` (checked before the simulation starts; short sessions are the usual
    cause)."""
    batch = config.client.batch_size
    for row in participant_rows(config, plan):
        if row["role"] == "client" and row["windows"] < batch:
            unit = config.data.client_unit
            hint = ("choose longer data.session_minutes or a smaller client.batch_size"
                    if unit == "session" else "choose a smaller client.batch_size")
            raise ConfigError(
                f"data: client {row['participant']} (subject {row['subject']}"
                f"{'' if unit == 'subject' else f', {unit}'}) has {row['windows']} windows, "
                f"fewer than one batch of client.batch_size = {batch}: {hint}"
            )


def participant_rows(config: ExperimentConfig, plan: FederationPlan) -> list[dict]:
    """One row per participant id of the run: its ``role`` (client / server / eval / unused), its
    ``subject``, and for units its ``recording`` index and time span in seconds; ``windows`` it
    holds. The run store writes them to ``participants.csv``."""
    units = client_units(config)
    rate = units.dataset.sampling_rate
    stride = stride_for(config.data.window, config.data.overlap)
    clients = set(plan.clients)
    rows = []
    for participant in plan.subjects:
        info = units.origin[participant]
        role = ("client" if participant in clients else "server"
                if info.subject in plan.server_subjects else "eval"
                if info.subject in plan.eval_subjects else "unused")
        windows = sum(max(0, (rec.num_samples - config.data.window) // stride + 1)
                      for rec in units.dataset.recordings[participant])
        rows.append({
            "participant": participant, "role": role, "subject": info.subject,
            "recording": info.recording, "start_s": info.start / rate,
            "end_s": info.stop / rate, "windows": windows,
        })
    return rows


@lru_cache(maxsize=8)
def _normalizer(key: tuple, kind: str, subjects: tuple[int, ...]) -> Normalizer:
    return fit_normalizer(kind, _load(key), subjects)


def normalizer_for(config: ExperimentConfig, own_subjects: tuple[int, ...]) -> Normalizer:
    """The run's input normalisation for windows of ``own_subjects``.

    ``standardize`` uses statistics of the server's subjects when it has some (the server can
    publish them with the model); otherwise the windows are standardised with their own
    subjects' statistics (each participant with its own data). Other kinds need no statistics.
    """
    data = config.data
    subjects: tuple[int, ...] = ()
    if data.normalization == "standardize":
        subjects = tuple(data.server_subjects) or tuple(own_subjects)
    return _normalizer(_dataset_key(data, config.run.seed), data.normalization, subjects)


def initial_model(config: ExperimentConfig, plan: FederationPlan) -> HARModel:
    """The global model of round 1: the paper's seeded untrained init or a pre-trained checkpoint."""
    if config.model.init == "untrained":
        return build_model(
            config.model.name,
            plan.num_channels,
            plan.num_classes,
            window=config.data.window,
            head_bias=config.model.head_bias,
            seed=derive_seed(config.run.seed, Stream.MODEL_INIT),
        )
    from fl_har.pretrain import check_compatible, load_checkpoint, model_from_checkpoint

    checkpoint = load_checkpoint(config.model.init)
    check_compatible(
        checkpoint.meta,
        model=config.model.name,
        in_channels=plan.num_channels,
        num_classes=plan.num_classes,
        window=config.data.window,
        head_bias=config.model.head_bias,
    )
    return model_from_checkpoint(checkpoint)


def empty_model(config: ExperimentConfig, num_channels: int, num_classes: int) -> HARModel:
    """A model of the run's architecture, to load received weights into."""
    return build_model(
        config.model.name,
        num_channels,
        num_classes,
        window=config.data.window,
        head_bias=config.model.head_bias,
        seed=0,
    )


@lru_cache(maxsize=2)
def _working_model(name: str, channels: int, classes: int, window: int,
                   head_bias: bool) -> HARModel:
    return build_model(name, channels, classes, window=window, head_bias=head_bias, seed=0)


def working_model(config: ExperimentConfig, num_channels: int, num_classes: int) -> HARModel:
    """The process's one model of the run's architecture that local training loads the received
    weights into. Shared by every participant a process serves: each round overwrites all its
    weights and buffers and local training clears the gradients, so nothing carries over; one
    model per participant would cost a model (and the time to build it) per participant ever
    served (thousands with ``data.client_unit = "session"``)."""
    model = config.model
    return _working_model(model.name, num_channels, num_classes, config.data.window,
                          model.head_bias)


def cohort_positions(seed: int, num_participants: int, size: int, run_round: int) -> list[int]:
    """Positions (in partition order) of the participants addressed in ``run_round``.

    ``size`` of ``num_participants`` drawn without replacement from stream ``(COHORT, round)``;
    every participant when ``size >= num_participants``. The server's cohort
    (``strategies.roster.seeded_cohort``) is this draw.
    """
    if size >= num_participants:
        return list(range(num_participants))
    generator = stream_rng(seed, Stream.COHORT, run_round)
    return sorted(int(i) for i in generator.choice(num_participants, size=size, replace=False))


@dataclass
class ParticipantUpdate(LocalUpdate):
    """A round's :class:`~fl_har.training.LocalUpdate` plus what the client reports with it.

    ``num_examples``: the N the client announces (-1: the windows trained on, the sum of
    ``label_counts``; DP-SGD with Poisson batches announces the public expected N, not the
    drawn count); ``metrics``: numbers for the updates table (``epsilon``: the cumulative DP-SGD
    epsilon; empty without DP-SGD).
    """

    num_examples: int = -1
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def reported_examples(self) -> int:
        if self.num_examples >= 0:
            return self.num_examples
        return int(self.label_counts.sum())


class Participant:
    """One study participant: their windows, their batch sampler, their local training."""

    def __init__(self, config: ExperimentConfig, subject: int) -> None:
        self.config = config
        self.subject = subject
        dataset = dataset_for(config)
        if subject not in dataset.subjects:
            raise ConfigError(f"subject {subject} is not in dataset {dataset.name!r}")
        self.num_classes = dataset.num_classes
        self.num_channels = dataset.num_channels
        self.windows = windows_for(config, subject)
        self.normalizer = normalizer_for(config, (subject,))
        client = config.client
        if client.local_epochs and len(self.windows.y) < client.batch_size:
            raise ConfigError(
                f"subject {subject}: {len(self.windows.y)} windows, fewer than one mini-batch "
                f"of client.batch_size = {client.batch_size}"
            )
        self.sampler = make_sampler(
            client.sampler,
            self.windows.y,
            client.batch_size,
            seed=config.run.seed,
            subject=subject,
            min_classes=client.diverse_min_classes,
            base=client.diverse_base,
        )
        ldp = LDPConfig()
        if client.privacy == "ldp":
            ldp = LDPConfig(clip=client.ldp_clip, noise=client.ldp_noise, scope=client.ldp_scope)
        self.training = LocalTrainingConfig(
            lr=client.lr,
            local_steps=client.local_steps,
            train_mode=client.train_mode,
            ldp=ldp,
        )
        self.dp = None
        if client.privacy == "dp_sgd":
            from fl_har.privacy.client_dp import client_dp, participant_position, steps_per_round

            plan = federation_plan(config, dataset)
            n = len(self.windows.y)
            self.dp = client_dp(
                config,
                client_windows=n,
                steps=steps_per_round(config, n),
                position=participant_position(plan.clients, plan.subjects, subject),
                num_participants=len(plan.clients),
            )
        self.class_weights = None
        if client.loss == "class_weighted":
            from fl_har.pretrain import class_weights

            self.class_weights = class_weights(self.windows.y, self.num_classes)

    def batch(self, server_round: int) -> tuple[np.ndarray, np.ndarray]:
        """This round's training windows (normalised) and their labels, in step order.

        The paper's protocol: the sampler's N windows. With ``client.local_epochs = E``: E passes
        over all the client's windows, each in its own order (``shuffle``: a permutation drawn
        per subject, round and epoch; ``sequential``: recording order), cut into mini-batches of
        ``batch_size`` with each pass's last partial batch dropped -- so every local step has the
        same B windows and the server's pseudo-gradient stays exact.
        """
        index = self.batch_index(server_round)
        return self.normalizer(self.windows.x[index]), self.windows.y[index]

    def batch_index(self, server_round: int) -> np.ndarray:
        """Indices into the subject's windows of this round's training windows (see :meth:`batch`)."""
        client = self.config.client
        if not client.local_epochs:
            index = self.sampler.batch(server_round)
        else:
            count = len(self.windows.y)
            usable = count - count % client.batch_size
            orders = []
            for epoch in range(client.local_epochs):
                if client.sampler == "shuffle":
                    generator = stream_rng(self.config.run.seed, Stream.LOCAL_EPOCHS,
                                           self.subject, server_round, epoch)
                    order = generator.permutation(count)
                else:
                    order = np.arange(count)
                orders.append(order[:usable])
            index = np.concatenate(orders)
        return index

    def _round_data(
        self, index: np.ndarray, transform: BatchTransform | None
    ) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.normalizer(self.windows.x[index]), self.windows.y[index]
        if transform is not None:
            x, y = transform(x, y, index)
        return x, y

    def train_round(
        self,
        global_state: dict[str, torch.Tensor],
        server_round: int,
        transform: BatchTransform | None = None,
    ) -> ParticipantUpdate:
        """Load the global weights, train S local steps on this round's windows, return the
        update (S = ``local_steps``, or one step per mini-batch with local epochs).

        ``transform(x, y, index)``, if given, replaces the round's normalised windows and labels
        before training (``index``: their indices into the subject's windows); a malicious client
        poisons its data through it (``clients/malicious.py``).

        With ``client.privacy = "dp_sgd"`` the steps are DP-SGD
        (:func:`fl_har.privacy.dp_local_update`; Poisson batches from all the client's windows,
        or the round's batch with ``dp_sampling = "fixed"``) and the update's ``metrics`` carry
        the client's cumulative ``epsilon`` after this round (:mod:`fl_har.privacy.client_dp`).
        """
        model = working_model(self.config, self.num_channels, self.num_classes)
        model.load_state_dict(global_state)
        seed = derive_seed(self.config.run.seed, Stream.CLIENT_UPDATE, self.subject, server_round)
        if self.dp is not None:
            return self._dp_round(model, server_round, seed, transform)
        x, y = self._round_data(self.batch_index(server_round), transform)
        training = self.training
        if self.config.client.local_epochs:
            training = replace(training, local_steps=len(y) // self.config.client.batch_size)
        update = local_update(
            model,
            x,
            y,
            training,
            num_classes=self.num_classes,
            seed=seed,
            class_weights=self.class_weights,
        )
        return ParticipantUpdate(**{f.name: getattr(update, f.name) for f in fields(update)})

    def _dp_round(
        self, model: HARModel, server_round: int, seed: int, transform: BatchTransform | None
    ) -> ParticipantUpdate:
        from fl_har.privacy import dp_local_update

        if self.dp.dp.sampling == "poisson":  # every step samples from all the client's windows
            index = np.arange(len(self.windows.y))
        else:
            index = self.batch_index(server_round)
        x, y = self._round_data(index, transform)
        update = dp_local_update(
            model,
            x,
            y,
            self.dp.dp,
            num_classes=self.num_classes,
            seed=seed,
            class_weights=self.class_weights,
            client_windows=self.dp.client_windows,
        )
        return ParticipantUpdate(
            state_dict=update.state_dict,
            label_counts=update.label_counts,
            mean_loss=update.mean_loss,
            seconds=update.seconds,
            num_examples=self.dp.dp.batch_size if self.dp.dp.sampling == "poisson" else -1,
            metrics={"epsilon": self.dp.epsilon(server_round)},
        )
