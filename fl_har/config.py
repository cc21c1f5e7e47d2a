"""Experiment configuration: TOML files, ``--set`` overrides, validation and Flower's flat form.

A config is a TOML file with the sections below (every key optional; defaults are the README's
main job). ``fl-har config show`` prints the defaults with their documentation.

- ``[run]``: ``name``, ``seed`` (one seed fixes data order, model init, sampling, noise and
  aggregation order), ``rounds``, ``regime`` (``frozen``: the paper's protocol, the global model is
  never updated so every round attacks a fresh batch under the same model; ``train``: real FedAvg),
  ``allow_client_failures``, ``out`` (parent folder of run directories), ``clients_per_round``
  (0 = every client every round) or ``client_fraction`` (share of the clients per round): the
  cohort of each round is drawn from the run seed and recorded in ``updates.parquet``.
- ``[data]``: ``dataset``, ``root`` (folder for WEAR/Wetlab files), ``channels`` (HAPT: ``acc`` or
  ``acc+gyro``), ``window``, ``overlap``, ``normalization`` (``none`` / ``standardize`` /
  ``minmax_batch``), ``clients`` (``"all"`` or subject ids), ``server_subjects`` (held by the server:
  auxiliary windows for calibration-based attacks and standardisation statistics),
  ``eval_subjects`` (held out for the server's per-round evaluation), ``client_unit``
  (``subject``: one client per subject; ``recording``: one per continuous recording; ``session``:
  one per ``session_minutes`` of recording; a unit's id is ``subject * 1000 + k``, held subjects
  stay whole, and ``data.clients`` / ``adversary.clients`` name subjects, i.e. all their units).
- ``[model]``: ``name``, ``init`` (``untrained`` or a checkpoint path from ``fl-har pretrain``),
  ``head_bias``.
- ``[client]``: ``batch_size`` (N windows per round), ``local_steps`` (S; 1 = FedSGD),
  ``local_epochs`` (0 = the paper's protocol: one batch of N windows per round in S steps; E >= 1
  = realistic FedAvg: E passes over all the client's windows in shuffled mini-batches of
  ``batch_size``, the last partial batch of each pass dropped), ``lr`` (eta),
  ``sampler`` (``diverse``: the paper's recommended mitigation, every batch covers at least
  ``diverse_min_classes`` classes, 0 = all the subject has; ``diverse_base`` is the sampler it
  starts from), ``loss`` (``unweighted`` / ``class_weighted``), ``train_mode`` (dropout active as
  in the paper), and the local privacy defence ``privacy``:

  - ``"none"``;
  - ``"ldp"``: the paper's batch clipping + noise ("LDP"; a local perturbation with **no
    epsilon**, not differential privacy): ``ldp_clip`` (rho, 0 = off), ``ldp_noise`` (sigma, an
    absolute std, 0 = off), ``ldp_scope``. For compatibility with configs written before the
    ``privacy`` key, ``privacy = "none"`` with ``ldp_clip`` or ``ldp_noise`` > 0 is read as
    ``"ldp"`` (and written back as ``"ldp"``);
  - ``"dp_sgd"``: DP-SGD (Abadi et al. 2016, :mod:`fl_har.privacy`): per-example clipping to
    ``dp_clip`` (C > 0), Gaussian noise ``dp_noise_multiplier`` (sigma, std sigma * C; 0 =
    clipping only, epsilon infinite) or, instead, a target ``dp_epsilon`` (> 0; 0 = unset) from
    which each client derives sigma over its planned participation (every round of its cohort
    schedule), at ``dp_delta`` (default 1e-5; must be below 1 / the client's windows, checked
    when the data is loaded, before the simulation starts), accountant ``dp_accountant``
    (``rdp`` / ``prv``), batches ``dp_sampling`` (``poisson``: what the accountant assumes,
    every step samples the client's whole data, ``client.sampler`` unused; ``fixed``: slices of
    the sampler's batch, epsilon approximate). The model must be trainable by Opacus (checked
    with its ModuleValidator: TinyHAR's BatchNorm is refused). Each reply reports the client's
    cumulative ``epsilon`` (a column of ``updates.parquet``). DP-SGD is allowed in the frozen
    regime too: every round still releases an update of the client's data, so epsilon composes
    over rounds exactly as in training (only the model the steps start from stays fixed).
- ``[server]``: ``lr`` (server learning rate: the global model moves by ``lr`` times the averaged
  update; 1 = plain FedAvg); ``aggregator``, the rule that combines the round's updates (the
  curious server still observes every update first): ``fedavg``, ``median`` / ``trimmed_mean``
  (coordinate-wise, Yin et al. 2018; ``trim_beta`` = share cut at each end, in [0, 0.5)),
  ``krum`` / ``multikrum`` (Blanchard et al. 2017; Multi-Krum averages the n - f best) and
  ``bulyan`` (El Mhamdi et al. 2018), which assume ``num_malicious`` = f attackers among the
  round's n updates (Krum and Multi-Krum need n > 2f + 2, Bulyan n >= 4f + 3), ``clip`` (norm
  clipping to ``clip_norm`` > 0 with optional Gaussian noise of multiplier
  ``noise_multiplier``, Sun et al. 2019), ``flame`` (Nguyen et al. 2022, noise
  ``flame_lambda`` times the median norm) and ``fltrust`` (Cao et al. 2021; the server's root
  update comes from its own ``data.server_subjects``). A robust aggregator replaces FedAvg's
  average, so it needs ``lr`` = 1. Each client's decision (selected / excluded / clipped) and its
  score are recorded in ``updates.parquet``. Central DP with Flower's wrappers ``dp`` (``none`` /
  ``central_fixed_server``: the server clips each update to ``dp_clip`` and adds noise of std
  ``dp_noise_multiplier * dp_clip / cohort`` to the average / ``central_fixed_client``: the
  clients clip, the server adds the noise; the curious server then sees clipped updates),
  ``dp_delta`` (delta of the per-round ``central_epsilon`` in ``rounds.parquet``; train regime
  only); ``secure_aggregation`` (an honest, simulated secure sum: the curious server attacks
  only each round's FedAvg-weighted cohort aggregate, never an individual update; needs
  ``aggregator = "fedavg"`` and no ``central_fixed_server``, which both read single updates);
  ``detector`` (``none`` / ``label_histogram``: the curious server's reconstructed label
  histograms scored as a poisoning detector, :mod:`attacks.label_histogram`) with
  ``detector_threshold`` (a client is flagged when its score, an excess share in [-1, 1],
  exceeds it; in (0, 1)), ``detector_attack`` (whose reconstructions: one of ``attacks.names``,
  or ``auto`` = the first of ilrg, llbg, rlu, llbg_trained among them, else the first name) and
  ``detector_exclude`` (leave flagged clients' updates out of the aggregation, whatever
  ``aggregator`` is; not with ``dp``). Scores and flags are recorded in ``updates.parquet``.
- ``[attacks]``: ``names`` and attack options (every other key; the attack registry defines
  them, ``fl-har attacks`` lists them).
- ``[simulation]``: ``cpus_per_client``, ``timeout``.
- ``[faults]``: injected client faults (``dropout``, ``straggler_probability``,
  ``straggler_delay``, ``crash_round``, ``crash_clients``), seeded from the run seed.
- ``[adversary]``: backdoor poisoning by malicious clients (train regime only; see
  :class:`AdversaryConfig`). No ``clients`` and ``fraction = 0`` (the default): no attack.

Flower's run config holds only scalars, so list values may also be written as comma-separated
strings (``clients = "1-10,12"``, ``names = "llg,ebi"``); :func:`to_flat` / :func:`from_flat` convert
between the nested form and Flower's dotted keys (``client.batch_size``).
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from fl_har.data import NORMALIZATIONS, SAMPLERS, available_datasets
from fl_har.data.units import CLIENT_UNITS
from fl_har.models import MODELS

# Choices that belong to the config itself; datasets, samplers, normalisations and models come
# from their registries, attacks (and their options) from the attack registry via the front door.
REGIMES = ("frozen", "train")
HAPT_CHANNELS = ("acc", "acc+gyro")
LOSSES = ("unweighted", "class_weighted")
LDP_SCOPES = ("last_layer", "all")
PRIVACY = ("none", "ldp", "dp_sgd")
DP_ACCOUNTANTS = ("rdp", "prv")
DP_SAMPLING = ("poisson", "fixed")
CENTRAL_DP = ("none", "central_fixed_server", "central_fixed_client")
PAPER_ATTACKS = ("llg", "llg_star", "ebi", "llbg", "ilrg")
AGGREGATORS = ("fedavg", "median", "trimmed_mean", "krum", "multikrum", "bulyan", "clip", "flame",
               "fltrust")
DETECTORS = ("none", "label_histogram")
# server.detector_attack = "auto": the first of these in attacks.names (the attacks that recover
# the most labels in this project's measurements), else the first attack of attacks.names.
DETECTOR_ATTACK_PREFERENCE = ("ilrg", "llbg", "rlu", "llbg_trained")


class ConfigError(ValueError):
    """A config file, key or value is invalid; the message names it and what was expected."""


@dataclass(frozen=True)
class RunConfig:
    name: str = "hapt-default"
    seed: int = 0
    rounds: int = 5
    regime: str = "frozen"
    allow_client_failures: bool = False
    out: str = "results"
    clients_per_round: int = 0
    client_fraction: float = 1.0


    def cohort_size(self, num_clients: int) -> int:
        """Clients addressed per round out of ``num_clients``."""
        if self.clients_per_round:
            return min(self.clients_per_round, num_clients)
        return max(1, round(self.client_fraction * num_clients))


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "hapt"
    root: str = ""
    channels: str = "acc"
    window: int = 50
    overlap: float = 0.5
    normalization: str = "none"
    clients: str | tuple[int, ...] = "all"
    server_subjects: tuple[int, ...] = ()
    eval_subjects: tuple[int, ...] = ()
    # Size of the generated dataset (dataset = "synthetic" only; for tests and demos).
    synthetic_subjects: int = 4
    # One client per subject, per recording, or per session of session_minutes (fl_har.data.units).
    client_unit: str = "subject"
    session_minutes: float = 0.0


@dataclass(frozen=True)
class ModelConfig:
    name: str = "deepconvlstm"
    init: str = "untrained"
    head_bias: bool = True


@dataclass(frozen=True)
class ClientConfig:
    batch_size: int = 100
    local_steps: int = 1
    local_epochs: int = 0
    lr: float = 0.01
    sampler: str = "shuffle"
    loss: str = "unweighted"
    train_mode: bool = True
    ldp_clip: float = 0.0
    ldp_noise: float = 0.0
    ldp_scope: str = "last_layer"
    # Local privacy defence: none | ldp (the paper's batch clip + noise, no epsilon) | dp_sgd.
    privacy: str = "none"
    dp_clip: float = 0.0
    dp_noise_multiplier: float = 0.0
    dp_epsilon: float = 0.0  # 0 = unset (use dp_noise_multiplier)
    dp_delta: float = 1e-5
    dp_accountant: str = "rdp"
    dp_sampling: str = "poisson"
    # sampler = "diverse": classes every batch covers (0 = all of the subject's) and base sampler.
    diverse_min_classes: int = 0
    diverse_base: str = "shuffle"

    @property
    def step_batch_size(self) -> int:
        """B: windows per local step (N / S, or the mini-batch size with local epochs)."""
        if self.local_epochs:
            return self.batch_size
        return self.batch_size // self.local_steps

    def steps_for(self, num_examples: int) -> int:
        """S, the local steps behind an update of ``num_examples`` windows (the server knows B)."""
        if self.local_epochs:
            return max(1, num_examples // self.batch_size)
        return self.local_steps


@dataclass(frozen=True)
class ServerConfig:
    lr: float = 1.0
    aggregator: str = "fedavg"
    trim_beta: float = 0.2
    num_malicious: int = 0
    clip_norm: float = 0.0
    noise_multiplier: float = 0.0
    flame_lambda: float = 0.001
    # Central DP with Flower's fixed-clipping wrappers (see the module docstring).
    dp: str = "none"
    dp_clip: float = 0.0
    dp_noise_multiplier: float = 0.0
    dp_delta: float = 1e-5
    # Simulated secure aggregation: the curious server sees only each round's cohort aggregate.
    secure_aggregation: bool = False
    # Poisoning detector on the curious server's reconstructed label histograms (see validate).
    detector: str = "none"
    detector_threshold: float = 0.1
    detector_attack: str = "auto"
    detector_exclude: bool = False

    def detector_attack_in(self, names: tuple[str, ...]) -> str:
        """The attack whose reconstructions the detector scores (``detector_attack``, with
        ``"auto"`` resolved among the run's ``attacks.names``)."""
        if self.detector_attack != "auto":
            return self.detector_attack
        return next((name for name in DETECTOR_ATTACK_PREFERENCE if name in names), names[0])


@dataclass(frozen=True)
class AttacksConfig:
    names: tuple[str, ...] = PAPER_ATTACKS
    # Every other [attacks] key is an attack option ((name, value) pairs, sorted by name). The
    # attack registry owns their types, defaults and checks: the front door validates them and
    # fills in defaults before a run starts (see ``check_attacks``), so a new attack option needs
    # no change here.
    options: tuple[tuple[str, bool | int | float | str], ...] = ()

    def option_values(self) -> dict[str, bool | int | float | str]:
        """The attack options as a dict."""
        return dict(self.options)


@dataclass(frozen=True)
class SimulationConfig:
    cpus_per_client: float = 1.0
    timeout: float = 3600.0


ADVERSARY_TRIGGERS = ("stamp", "diffusion")
ADVERSARY_MODES = ("poison", "boost", "constrain")


@dataclass(frozen=True)
class AdversaryConfig:
    """Malicious clients planting a backdoor (``attacks.backdoor``; README "Backdoor poisoning").

    ``clients``: subject ids of the attackers (fixed for the whole run), or ``fraction``: that
    share of the clients, at least one, drawn from the run seed (stream ``ADVERSARY``).
    ``target``: the backdoor's target class, by name or index. ``poison_rate``: share of the
    attacker's training windows replaced by triggered windows labelled ``target``. ``trigger``:
    ``stamp`` (band-limited additive burst) or ``diffusion`` (the generated trigger of
    IMU-DM-CLIP, :mod:`attacks.backdoor.diffusion`: each attacker trains it on its own windows,
    ``diffusion_denoiser_steps`` denoiser mini-batches and ``diffusion_clip_epochs`` IMU-encoder
    epochs, text encoder ``diffusion_text_encoder`` = ``auto`` / ``hashed`` / ``minilm``; trained
    generators are cached by content in ``diffusion_cache``, default ``<run.out>/.cache/
    diffusion-triggers``).
    ``mode``: ``poison`` (train on poisoned data, send honestly), ``boost`` (model replacement,
    Bagdasaryan et al. 2020: the update is scaled by ``boost``; 0 = auto ``n / server.lr`` with
    ``n`` the clients per round) or ``constrain`` (the update is projected into the L2 ball of
    radius ``norm_bound``, to pass norm clipping; scaled by ``boost`` first when it is set).
    ``rounds``: ``"all"``, a round ``"3"`` or ranges ``"5-10,12"`` in which the attackers attack
    (honest otherwise). ``poison_once``: false = every attack round poisons a fresh draw of
    ``poison_rate`` of the round's windows; true = a poisoned local dataset prepared once: a fixed
    ``poison_rate`` share of the attacker's windows is poisoned in its first attack round and
    reused in every later one (a generated trigger then costs its generation only once: its
    poisoned windows are cached in ``diffusion_cache`` too, for every simulation worker).
    ``stamp_*``: the stamp trigger: ``channels`` (indices, empty = all), ``amplitude`` (peak, in channel stds),
    ``duration`` (samples), ``position`` (first sample, -1 = centred), ``band_low`` /
    ``band_high`` (cycles per sample).
    """

    clients: tuple[int, ...] = ()
    fraction: float = 0.0
    target: str = "1"
    poison_rate: float = 0.1
    trigger: str = "stamp"
    mode: str = "poison"
    boost: float = 0.0
    norm_bound: float = 0.0
    rounds: str = "all"
    poison_once: bool = False
    stamp_channels: tuple[int, ...] = ()
    stamp_amplitude: float = 1.0
    stamp_duration: int = 25
    stamp_position: int = -1
    stamp_band_low: float = 0.1
    stamp_band_high: float = 0.2
    diffusion_cache: str = ""
    diffusion_text_encoder: str = "auto"
    diffusion_denoiser_steps: int = 2000
    diffusion_clip_epochs: int = 30

    @property
    def active(self) -> bool:
        """Whether any client is malicious."""
        return bool(self.clients) or self.fraction > 0

    def attack_rounds(self) -> tuple[int, ...] | None:
        """The rounds the attackers attack (None = every round)."""
        if self.rounds.strip().lower() == "all":
            return None
        return parse_subjects(self.rounds, "adversary.rounds")

    def attacks_in(self, run_round: int) -> bool:
        """Whether the attackers attack in ``run_round``."""
        rounds = self.attack_rounds()
        return rounds is None or run_round in rounds


@dataclass(frozen=True)
class FaultsConfig:
    """Injected faults, for experiments on unreliable fleets (all off by default).

    Every draw comes from ``derive_seed(run.seed, Stream.FAULTS, round, partition)``, so the same
    seed reproduces the same faults whatever the cohort or the order of replies. Each fault is
    recorded in ``updates.parquet`` (status ``failed``, ``cause``) and ``failures.csv``.

    Parameters
    ----------
    dropout : float
        Per round and client, the probability that the client does not answer (it drops out
        before training; the server records cause ``dropout``).
    straggler_probability : float
        Per round and client, the probability that the client is slow: it waits
        ``straggler_delay`` seconds before training. Longer than ``simulation.timeout``, its
        update is lost (cause ``timeout``).
    straggler_delay : float
        Seconds a straggler waits (>= 0).
    crash_round : int
        The round in which the ``crash_clients`` raise during the round, after local training
        and before replying (0 = no crash; cause ``crash``). They answer again in later rounds.
    crash_clients : tuple of int
        Subject ids of the clients that crash in ``crash_round``.
    """

    dropout: float = 0.0
    straggler_probability: float = 0.0
    straggler_delay: float = 0.0
    crash_round: int = 0
    crash_clients: tuple[int, ...] = ()


@dataclass(frozen=True)
class ExperimentConfig:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    client: ClientConfig = field(default_factory=ClientConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    attacks: AttacksConfig = field(default_factory=AttacksConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    adversary: AdversaryConfig = field(default_factory=AdversaryConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested plain dict (tuples as lists), as written to a run's ``config.toml``."""
        out: dict[str, dict[str, Any]] = {}
        for section in fields(self):
            values = dataclasses.asdict(getattr(self, section.name))
            values.update(values.pop("options", ()))
            out[section.name] = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
        return out

    def replace(self, **overrides: Any) -> ExperimentConfig:
        """A copy with dotted-key overrides applied and validated (``{"client.lr": 0.1}``)."""
        nested = self.to_dict()
        for key, value in overrides.items():
            section, _, name = key.partition(".")
            nested.setdefault(section, {})[name] = value
        return from_dict(nested)


_SECTION_TYPES: dict[str, type] = {
    "run": RunConfig,
    "data": DataConfig,
    "model": ModelConfig,
    "client": ClientConfig,
    "server": ServerConfig,
    "attacks": AttacksConfig,
    "simulation": SimulationConfig,
    "faults": FaultsConfig,
    "adversary": AdversaryConfig,
}


# Flower's run config and the results tables store integers as signed 64-bit.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# More subject ids than any HAR study has: a typo such as "1-1000000000" fails here, not in RAM.
MAX_SUBJECTS = 100_000


def _subject_id(item: Any, where: str) -> int:
    if isinstance(item, bool) or not isinstance(item, int):
        raise ConfigError(f"{where}: subject ids must be integers, got {item!r}")
    if not 0 <= item <= INT64_MAX:
        raise ConfigError(f"{where}: subject id {item} must be an integer >= 0")
    return item


def parse_subjects(value: Any, where: str) -> tuple[int, ...]:
    """Subject ids from an int, a list of ints or a string like ``"1-5,8, 10"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (_subject_id(value, where),)
    if isinstance(value, str):
        items: list[int] = []
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            lo, dash, hi = part.partition("-")
            try:
                if dash:
                    first, last = _subject_id(int(lo), where), _subject_id(int(hi), where)
                    if last - first + len(items) >= MAX_SUBJECTS:
                        raise ConfigError(
                            f"{where}: {part!r} lists more than {MAX_SUBJECTS} subjects")
                    items.extend(range(first, last + 1))
                else:
                    items.append(_subject_id(int(part), where))
            except ValueError as exc:
                if isinstance(exc, ConfigError):
                    raise
                raise ConfigError(
                    f"{where}: {part!r} is not a subject id or range (expected e.g. 3 or 1-10)"
                ) from None
        return tuple(items)
    if isinstance(value, list | tuple):
        return tuple(_subject_id(item, where) for item in value)
    raise ConfigError(f"{where}: expected a list of subject ids or a string like '1-10,12'")


def _parse_names(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        names = tuple(p.strip() for p in value.split(",") if p.strip())
    elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        names = tuple(value)
    else:
        raise ConfigError(f"{where}: expected a list of names or a comma-separated string")
    for name in names:
        _check_text(name, where)
    return names


def _check_text(value: str, where: str) -> str:
    """Strings end up in paths, Flower messages and Parquet files: no NUL or other control
    characters (a TOML escape such as \\u0000 can put one in)."""
    bad = next((c for c in value if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        raise ConfigError(
            f"{where}: {value!r} contains the control character U+{ord(bad):04X}; "
            "remove it (names and paths must be plain text)"
        )
    return value


def _attack_options(values: Mapping[str, Any], where: str) -> tuple[tuple[str, Any], ...]:
    """``[attacks]`` keys besides ``names``: scalar values, checked by the attack registry later."""
    out = []
    for key, value in values.items():
        if not isinstance(value, (bool, int, float, str)):
            raise ConfigError(f"{where}.{key}: expected a single value, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}.{key}: expected a finite number, got {value!r}")
        if isinstance(value, str):
            _check_text(value, f"{where}.{key}")
        out.append((key, value))
    return tuple(out)


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Convert a TOML / command-line value to the type of the field's default."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        number = None
        if isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str):
            try:
                number = int(value)
            except ValueError:  # also Python's limit on the digits of an int
                pass
        if number is None:
            raise ConfigError(f"{where}: expected an integer, got {_short(value)}")
        if not INT64_MIN <= number <= INT64_MAX:
            raise ConfigError(f"{where}: {_short(number)} does not fit a 64-bit integer")
        return number
    if isinstance(default, float):
        number = None
        try:
            if isinstance(value, (int, float)) and not isinstance(value, bool) or isinstance(value, str):
                number = float(value)
        except ValueError:
            pass
        except OverflowError:  # an integer too large for a float
            number = math.inf
        if number is None:
            raise ConfigError(f"{where}: expected a number, got {_short(value)}")
        if not math.isfinite(number):
            raise ConfigError(f"{where}: expected a finite number, got {_short(value)}")
        return number
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {_short(value)}")
        return _check_text(value, where)
    return value


def _short(value: Any, limit: int = 60) -> str:
    """``repr`` of a value, cut short (a 4000-digit number in an error message helps no one)."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        return f"an integer of {value.bit_length()} bits"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_folder_name(name: str, where: str) -> None:
    """A name used as one folder under an output directory: no path separators, no ``..``."""
    if (not isinstance(name, str) or not name.strip() or "/" in name or "\\" in name
            or name in (".", "..") or len(name.encode("utf-8", "replace")) > 255):
        raise ConfigError(
            f"{where} {name!r} must be a plain folder name (no '/', '\\', '..'; at most 255 "
            "bytes): it names a folder inside the output directory"
        )
    _check_text(name, where)


def _choice(value: str, choices: Iterable[str], where: str) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(choices)}")


def from_dict(raw: Mapping[str, Any], *, source: str = "config") -> ExperimentConfig:
    """Build and validate a config from a nested dict (as read from TOML)."""
    unknown_sections = set(raw) - set(_SECTION_TYPES)
    if unknown_sections:
        raise ConfigError(
            f"{source}: unknown section(s) {', '.join(sorted(unknown_sections))}; "
            f"valid sections: {', '.join(_SECTION_TYPES)}"
        )
    sections: dict[str, Any] = {}
    for name, section_type in _SECTION_TYPES.items():
        values = raw.get(name, {})
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: [{name}] must be a table of keys")
        defaults = section_type()
        valid = {f.name for f in fields(section_type)}
        if section_type is AttacksConfig:
            values = dict(values)
            options = {k: values.pop(k) for k in sorted(set(values) - {"names"})}
            values["options"] = _attack_options(options, f"{source}: attacks")
        unknown = set(values) - valid
        if unknown:
            raise ConfigError(
                f"{source}: unknown key(s) {', '.join(f'{name}.{k}' for k in sorted(unknown))}; "
                f"valid keys in [{name}]: {', '.join(sorted(valid))}"
            )
        kwargs = {}
        for key, value in values.items():
            where = f"{source}: {name}.{key}"
            default = getattr(defaults, key)
            if key in ("server_subjects", "eval_subjects", "crash_clients") or (
                section_type is AdversaryConfig and key in ("clients", "stamp_channels")
            ):
                kwargs[key] = parse_subjects(value, where)
            elif section_type is AdversaryConfig and key in ("target", "rounds"):
                if isinstance(value, bool) or not isinstance(value, (int, str)):
                    raise ConfigError(f"{where}: expected a name, a number or a string, got {value!r}")
                kwargs[key] = str(value).strip()
            elif key == "clients":
                is_all = isinstance(value, str) and value.strip().lower() == "all"
                kwargs[key] = "all" if is_all else parse_subjects(value, where)
            elif key == "names":
                kwargs[key] = _parse_names(value, where)
            elif key == "options" and section_type is AttacksConfig:
                kwargs[key] = value
            else:
                kwargs[key] = _coerce(value, default, where)
        sections[name] = section_type(**kwargs)
    client = sections["client"]
    if client.privacy == "none" and (client.ldp_clip > 0 or client.ldp_noise > 0):
        # Configs from before the privacy key: ldp_* keys alone select the paper's perturbation.
        sections["client"] = dataclasses.replace(client, privacy="ldp")
    config = ExperimentConfig(**sections)
    validate(config, source=source)
    return config


def validate(config: ExperimentConfig, *, source: str = "config") -> None:
    """Check every value against its valid range or choices (raises :class:`ConfigError`)."""
    run, data, model, client = config.run, config.data, config.model, config.client
    _choice(run.regime, REGIMES, f"{source}: run.regime")
    if run.rounds < 1:
        raise ConfigError(f"{source}: run.rounds must be >= 1, got {run.rounds}")
    if run.seed < 0:
        raise ConfigError(f"{source}: run.seed must be an integer >= 0, got {run.seed}")
    if run.clients_per_round < 0:
        raise ConfigError(
            f"{source}: run.clients_per_round must be >= 0 (0 = every client), "
            f"got {run.clients_per_round}"
        )
    if not 0.0 < run.client_fraction <= 1.0:
        raise ConfigError(
            f"{source}: run.client_fraction must be in (0, 1], got {run.client_fraction}"
        )
    if run.clients_per_round and run.client_fraction < 1.0:
        raise ConfigError(
            f"{source}: set run.clients_per_round or run.client_fraction, not both"
        )
    check_folder_name(run.name, f"{source}: run.name")
    _choice(data.dataset, available_datasets(), f"{source}: data.dataset")
    if data.dataset == "custom" and not data.root:
        raise ConfigError(
            f"{source}: data.dataset = \"custom\" needs data.root = the folder of your data "
            "(check it first with `fl-har data check DIR`)"
        )
    _choice(data.channels, HAPT_CHANNELS, f"{source}: data.channels")
    _choice(data.normalization, NORMALIZATIONS, f"{source}: data.normalization")
    if data.window < 2:
        raise ConfigError(f"{source}: data.window must be >= 2 samples, got {data.window}")
    if not 0.0 <= data.overlap < 1.0:
        raise ConfigError(f"{source}: data.overlap must be in [0, 1), got {data.overlap}")
    if data.synthetic_subjects < 1:
        raise ConfigError(f"{source}: data.synthetic_subjects must be >= 1")
    _choice(data.client_unit, CLIENT_UNITS, f"{source}: data.client_unit")
    if data.client_unit == "session" and not data.session_minutes > 0:
        raise ConfigError(
            f"{source}: data.client_unit = \"session\" needs data.session_minutes > 0 (the "
            f"length of one client's session), got {data.session_minutes}"
        )
    if data.client_unit != "session" and data.session_minutes:
        raise ConfigError(
            f"{source}: data.session_minutes = {data.session_minutes} applies only to "
            f"data.client_unit = \"session\" (it is {data.client_unit!r})"
        )
    overlap = set(data.server_subjects) & set(data.eval_subjects)
    if overlap:
        raise ConfigError(
            f"{source}: subjects {sorted(overlap)} are in both data.server_subjects and "
            "data.eval_subjects; held-out evaluation subjects must stay unseen"
        )
    if data.clients != "all":
        taken = set(data.clients) & (set(data.server_subjects) | set(data.eval_subjects))
        if taken:
            raise ConfigError(
                f"{source}: subjects {sorted(taken)} are listed as data.clients and also held by "
                "the server (data.server_subjects / data.eval_subjects)"
            )
        if not data.clients:
            raise ConfigError(f"{source}: data.clients is empty")
    _choice(model.name, MODELS, f"{source}: model.name")
    if model.init != "untrained" and not model.init.strip():
        raise ConfigError(f"{source}: model.init must be 'untrained' or a checkpoint path")
    if client.batch_size < 1:
        raise ConfigError(f"{source}: client.batch_size must be >= 1, got {client.batch_size}")
    if client.local_steps < 1:
        raise ConfigError(f"{source}: client.local_steps must be >= 1, got {client.local_steps}")
    if client.local_epochs < 0:
        raise ConfigError(
            f"{source}: client.local_epochs must be >= 0 (0 = one batch per round), "
            f"got {client.local_epochs}"
        )
    if client.local_epochs and client.local_steps != 1:
        raise ConfigError(
            f"{source}: client.local_steps applies to the paper's one-batch rounds; with "
            f"client.local_epochs = {client.local_epochs} a client takes one step per "
            "mini-batch of client.batch_size windows (leave local_steps at 1)"
        )
    if client.local_epochs and client.sampler not in ("shuffle", "sequential"):
        raise ConfigError(
            f"{source}: client.sampler {client.sampler!r} cannot order local epochs; with "
            "client.local_epochs use shuffle (a new order every epoch) or sequential"
        )
    if client.batch_size % client.local_steps:
        raise ConfigError(
            f"{source}: client.batch_size ({client.batch_size}) must be divisible by "
            f"client.local_steps ({client.local_steps}): each local step uses B = N / S windows"
        )
    if not client.lr > 0:
        raise ConfigError(f"{source}: client.lr must be > 0, got {client.lr}")
    _choice(client.sampler, SAMPLERS, f"{source}: client.sampler")
    _choice(client.loss, LOSSES, f"{source}: client.loss")
    _choice(client.ldp_scope, LDP_SCOPES, f"{source}: client.ldp_scope")
    if client.ldp_clip < 0 or client.ldp_noise < 0:
        raise ConfigError(f"{source}: client.ldp_clip and client.ldp_noise must be >= 0 (0 = off)")
    _validate_privacy(config, source)
    if not config.attacks.names:
        raise ConfigError(f"{source}: attacks.names is empty")
    if len(set(config.attacks.names)) != len(config.attacks.names):
        raise ConfigError(f"{source}: attacks.names lists an attack twice")
    if not config.server.lr > 0:
        raise ConfigError(f"{source}: server.lr must be > 0, got {config.server.lr}")
    if config.server.lr != 1.0 and run.regime == "frozen":
        raise ConfigError(
            f"{source}: server.lr = {config.server.lr} has no effect in the frozen regime (the "
            "global model is never updated); use run.regime = \"train\""
        )
    _validate_faults(config, source)
    _validate_aggregator(config, source)
    _validate_detector(config, source)
    if config.server.secure_aggregation and client.local_epochs:
        raise ConfigError(
            f"{source}: server.secure_aggregation needs every client to take the same number of "
            f"local steps (client.local_epochs = 0); with client.local_epochs = "
            f"{client.local_epochs} the cohort aggregate mixes different step counts"
        )
    if config.server.secure_aggregation:
        # A secure sum hides the individual updates these server-side steps read.
        if config.server.aggregator != "fedavg":
            raise ConfigError(
                f"{source}: server.secure_aggregation hides the individual updates that "
                f"server.aggregator = {config.server.aggregator!r} needs; use \"fedavg\""
            )
        if config.server.dp == "central_fixed_server":
            raise ConfigError(
                f"{source}: server.secure_aggregation hides the individual updates that "
                "server.dp = \"central_fixed_server\" clips; use \"central_fixed_client\" "
                "(the clients clip before the secure sum)"
            )
    if not config.simulation.timeout > 0:
        raise ConfigError(
            f"{source}: simulation.timeout must be > 0 seconds (a client that has not replied "
            f"by then is a recorded failure), got {config.simulation.timeout}"
        )
    if config.simulation.cpus_per_client <= 0:
        raise ConfigError(f"{source}: simulation.cpus_per_client must be > 0")
    _validate_adversary(config, source)


def _validate_adversary(config: ExperimentConfig, source: str) -> None:
    """The ``[adversary]`` checks that need no dataset (see ``fl_har.adversary`` for the rest)."""
    adv = config.adversary
    where = f"{source}: adversary"
    _choice(adv.trigger, ADVERSARY_TRIGGERS, f"{where}.trigger")
    _choice(adv.mode, ADVERSARY_MODES, f"{where}.mode")
    if not 0.0 <= adv.poison_rate <= 1.0:
        raise ConfigError(f"{where}.poison_rate must be in [0, 1], got {adv.poison_rate}")
    if not 0.0 <= adv.fraction <= 1.0:
        raise ConfigError(f"{where}.fraction must be in [0, 1], got {adv.fraction}")
    if adv.clients and adv.fraction:
        raise ConfigError(f"{where}: set adversary.clients or adversary.fraction, not both")
    if len(set(adv.clients)) != len(adv.clients):
        raise ConfigError(f"{where}.clients lists a subject twice: {list(adv.clients)}")
    if adv.boost < 0:
        raise ConfigError(f"{where}.boost must be >= 0 (0 = auto: n / server.lr), got {adv.boost}")
    if adv.norm_bound < 0:
        raise ConfigError(f"{where}.norm_bound must be >= 0, got {adv.norm_bound}")
    if adv.mode == "constrain" and not adv.norm_bound > 0:
        raise ConfigError(
            f"{where}.mode = \"constrain\" projects updates into an L2 ball: set "
            "adversary.norm_bound > 0 (e.g. the server's clipping norm)"
        )
    if not adv.target:
        raise ConfigError(f"{where}.target is empty: expected a class name or index")
    rounds = adv.attack_rounds()
    if rounds is not None and (not rounds or min(rounds) < 1):
        raise ConfigError(
            f"{where}.rounds = {adv.rounds!r}: expected \"all\", a round or ranges like \"5-10\" "
            "(rounds count from 1)"
        )
    if not (adv.stamp_amplitude > 0):
        raise ConfigError(f"{where}.stamp_amplitude must be > 0 (channel stds), got "
                          f"{adv.stamp_amplitude}")
    if adv.stamp_duration < 2:
        raise ConfigError(f"{where}.stamp_duration must be >= 2 samples, got {adv.stamp_duration}")
    # The stamp must fit the window, checked only when a stamp attack runs (the default duration
    # is longer than some datasets' windows).
    stamping = adv.active and adv.trigger == "stamp"
    if stamping and not adv.stamp_duration <= config.data.window:
        raise ConfigError(f"{where}.stamp_duration must be in [2, data.window = "
                          f"{config.data.window}] samples, got {adv.stamp_duration}")
    if stamping and adv.stamp_position != -1 and not (
        0 <= adv.stamp_position <= config.data.window - adv.stamp_duration
    ):
        raise ConfigError(
            f"{where}.stamp_position must be -1 (centred) or a first sample in [0, "
            f"{config.data.window - adv.stamp_duration}] so the burst fits the window, got "
            f"{adv.stamp_position}"
        )
    if not 0.0 <= adv.stamp_band_low < adv.stamp_band_high <= 0.5:
        raise ConfigError(
            f"{where}: need 0 <= stamp_band_low < stamp_band_high <= 0.5 cycles per sample, got "
            f"{adv.stamp_band_low}, {adv.stamp_band_high}"
        )
    if adv.diffusion_denoiser_steps < 1 or adv.diffusion_clip_epochs < 1:
        raise ConfigError(f"{where}.diffusion_denoiser_steps and diffusion_clip_epochs must be "
                          f">= 1, got {adv.diffusion_denoiser_steps} and "
                          f"{adv.diffusion_clip_epochs}")
    if any(c < 0 for c in adv.stamp_channels):
        raise ConfigError(f"{where}.stamp_channels: channel indices must be >= 0")
    if adv.active and config.run.regime != "train":
        raise ConfigError(
            f"{where}: backdoor poisoning needs run.regime = \"train\" (in the frozen regime "
            "the global model never changes, so no backdoor can be planted)"
        )


def _validate_faults(config: ExperimentConfig, source: str) -> None:
    faults = config.faults
    for key in ("dropout", "straggler_probability"):
        value = getattr(faults, key)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{source}: faults.{key} must be a probability in [0, 1], got {value}")
    if faults.straggler_delay < 0:
        raise ConfigError(
            f"{source}: faults.straggler_delay must be >= 0 seconds, got {faults.straggler_delay}")
    if faults.straggler_probability > 0 and faults.straggler_delay == 0:
        raise ConfigError(
            f"{source}: faults.straggler_probability = {faults.straggler_probability} needs a "
            "faults.straggler_delay > 0 (seconds a straggler waits)"
        )
    if faults.crash_round < 0:
        raise ConfigError(
            f"{source}: faults.crash_round must be >= 0 (0 = no crash), got {faults.crash_round}")
    if bool(faults.crash_round) != bool(faults.crash_clients):
        raise ConfigError(
            f"{source}: set faults.crash_round (>= 1) and faults.crash_clients (subject ids) "
            "together"
        )
    if faults.crash_round > config.run.rounds:
        raise ConfigError(
            f"{source}: faults.crash_round = {faults.crash_round} is after the last round "
            f"(run.rounds = {config.run.rounds})"
        )
    clients = config.data.clients
    if clients != "all":
        outside = sorted(set(faults.crash_clients) - set(clients))
        if outside:
            raise ConfigError(
                f"{source}: faults.crash_clients {outside} are not in data.clients")


def _validate_aggregator(config: ExperimentConfig, source: str) -> None:
    server = config.server
    _choice(server.aggregator, AGGREGATORS, f"{source}: server.aggregator")
    if not 0.0 <= server.trim_beta < 0.5:
        raise ConfigError(f"{source}: server.trim_beta must be in [0, 0.5), got {server.trim_beta}")
    if server.num_malicious < 0:
        raise ConfigError(f"{source}: server.num_malicious must be >= 0, got {server.num_malicious}")
    if server.clip_norm < 0 or server.noise_multiplier < 0 or server.flame_lambda < 0:
        raise ConfigError(f"{source}: server.clip_norm, server.noise_multiplier and "
                          "server.flame_lambda must be >= 0")
    if server.aggregator == "clip" and not server.clip_norm > 0:
        raise ConfigError(f"{source}: server.aggregator = \"clip\" needs server.clip_norm > 0 "
                          f"(the L2 bound of each update), got {server.clip_norm}")
    if server.aggregator == "fltrust" and not config.data.server_subjects:
        raise ConfigError(f"{source}: server.aggregator = \"fltrust\" needs data.server_subjects "
                          "(the server trains its root update on their windows)")
    if server.aggregator != "fedavg" and server.lr != 1.0:
        raise ConfigError(
            f"{source}: server.lr = {server.lr} applies to FedAvg only; server.aggregator = "
            f"{server.aggregator!r} replaces the average (use server.lr = 1)"
        )
    if config.data.clients != "all":
        check_aggregator_cohort(config, len(config.data.clients), source=source)


def _validate_detector(config: ExperimentConfig, source: str) -> None:
    """``server.detector`` and its keys (the label-histogram poisoning detector)."""
    server, where = config.server, f"{source}: server"
    _choice(server.detector, DETECTORS, f"{where}.detector")
    if server.detector == "none":
        defaults = ServerConfig()
        changed = [k for k in ("detector_threshold", "detector_attack", "detector_exclude")
                   if getattr(server, k) != getattr(defaults, k)]
        if changed:
            raise ConfigError(f"{where}.{', server.'.join(changed)} apply only with "
                              "server.detector = \"label_histogram\"")
        return
    if not 0.0 < server.detector_threshold < 1.0:
        raise ConfigError(f"{where}.detector_threshold must be in (0, 1) (the excess share of a "
                          f"class that flags a client), got {server.detector_threshold}")
    names = config.attacks.names
    if server.detector_attack != "auto" and server.detector_attack not in names:
        raise ConfigError(f"{where}.detector_attack = {server.detector_attack!r} is not among "
                          f"attacks.names ({', '.join(names)}): the detector scores the "
                          "reconstructions of an attack the curious server runs (or \"auto\")")
    if server.secure_aggregation:
        raise ConfigError(f"{where}.detector = {server.detector!r} scores each client's "
                          "reconstructed histogram; server.secure_aggregation hides the individual "
                          "updates")
    if server.detector_exclude and server.dp != "none":
        raise ConfigError(f"{where}.detector_exclude leaves flagged updates out of the average, "
                          f"which server.dp = {server.dp!r} is calibrated on (a fixed cohort); "
                          "the recorded central_epsilon would be wrong")


def check_aggregator_cohort(
    config: ExperimentConfig, num_clients: int, *, source: str = "config"
) -> None:
    """Krum-family aggregators need enough updates per round for ``server.num_malicious``
    (n = the round's cohort out of ``num_clients``)."""
    server = config.server
    n = config.run.cohort_size(num_clients)
    f = server.num_malicious
    if server.aggregator in ("krum", "multikrum") and not n > 2 * f + 2:
        raise ConfigError(
            f"{source}: server.aggregator = {server.aggregator!r} with server.num_malicious = "
            f"{f} needs more than 2f + 2 = {2 * f + 2} updates per round, but the cohort has "
            f"{n} (data.clients / run.clients_per_round / run.client_fraction)"
        )
    if server.aggregator == "bulyan" and not n >= 4 * f + 3:
        raise ConfigError(
            f"{source}: server.aggregator = \"bulyan\" with server.num_malicious = {f} needs "
            f"at least 4f + 3 = {4 * f + 3} updates per round, but the cohort has {n} "
            "(data.clients / run.clients_per_round / run.client_fraction)"
        )


def _validate_privacy(config: ExperimentConfig, source: str) -> None:
    """The local (client.privacy) and central (server.dp) defences and the diverse sampler."""
    client, server, regime = config.client, config.server, config.run.regime
    _choice(client.privacy, PRIVACY, f"{source}: client.privacy")
    _choice(client.dp_accountant, DP_ACCOUNTANTS, f"{source}: client.dp_accountant")
    _choice(client.dp_sampling, DP_SAMPLING, f"{source}: client.dp_sampling")
    _choice(client.diverse_base, tuple(s for s in SAMPLERS if s != "diverse"),
            f"{source}: client.diverse_base")
    if client.diverse_min_classes < 0:
        raise ConfigError(f"{source}: client.diverse_min_classes must be >= 0 (0 = every class "
                          f"the subject has), got {client.diverse_min_classes}")
    if client.sampler == "diverse" and client.diverse_min_classes > client.batch_size:
        raise ConfigError(f"{source}: client.diverse_min_classes = {client.diverse_min_classes} "
                          f"cannot be covered by a batch of client.batch_size = "
                          f"{client.batch_size} windows")
    if client.privacy == "ldp" and not (client.ldp_clip > 0 or client.ldp_noise > 0):
        raise ConfigError(f"{source}: client.privacy = \"ldp\" needs client.ldp_clip > 0 or "
                          "client.ldp_noise > 0 (the paper's batch clipping + noise)")
    if client.privacy != "ldp" and (client.ldp_clip > 0 or client.ldp_noise > 0):
        raise ConfigError(f"{source}: client.ldp_clip / client.ldp_noise apply only with "
                          f"client.privacy = \"ldp\", not {client.privacy!r}")
    defaults = ClientConfig()
    dp_keys = ("dp_clip", "dp_noise_multiplier", "dp_epsilon", "dp_delta", "dp_accountant",
               "dp_sampling")
    changed = [k for k in dp_keys if getattr(client, k) != getattr(defaults, k)]
    if client.privacy != "dp_sgd" and changed:
        raise ConfigError(f"{source}: client.{', client.'.join(changed)} apply only with "
                          f"client.privacy = \"dp_sgd\", not {client.privacy!r}")
    if client.privacy == "dp_sgd":
        _validate_dp_sgd(config, source)
    _choice(server.dp, CENTRAL_DP, f"{source}: server.dp")
    if server.dp == "none":
        if server.dp_clip or server.dp_noise_multiplier or server.dp_delta != 1e-5:
            raise ConfigError(f"{source}: server.dp_clip / dp_noise_multiplier / dp_delta apply "
                              "only with server.dp = central_fixed_server or central_fixed_client")
        return
    if regime == "frozen":
        raise ConfigError(f"{source}: server.dp = {server.dp!r} has no effect in the frozen "
                          "regime (the noised aggregate is never applied and the curious server "
                          "reads the individual updates); use run.regime = \"train\"")
    if not server.dp_clip > 0:
        raise ConfigError(f"{source}: server.dp = {server.dp!r} needs server.dp_clip > 0 (the "
                          f"L2 bound of each client's update), got {server.dp_clip}")
    if server.dp_noise_multiplier < 0:
        raise ConfigError(f"{source}: server.dp_noise_multiplier must be >= 0, got "
                          f"{server.dp_noise_multiplier}")
    if not 0 < server.dp_delta < 1:
        raise ConfigError(f"{source}: server.dp_delta must be in (0, 1), got {server.dp_delta}")
    if server.lr != 1.0:
        raise ConfigError(f"{source}: server.dp wraps plain FedAvg; leave server.lr at 1")
    if server.aggregator != "fedavg":
        # The wrappers' noise std (dp_noise_multiplier * dp_clip / cohort) and central_epsilon
        # assume the clipped updates are averaged; a robust rule has another sensitivity.
        raise ConfigError(f"{source}: server.dp = {server.dp!r} is calibrated for FedAvg's "
                          f"average; server.aggregator = {server.aggregator!r} would make the "
                          "recorded central_epsilon wrong (use server.aggregator = \"fedavg\", "
                          "or the aggregator's own clipping/noise: \"clip\" or \"flame\")")


def _validate_dp_sgd(config: ExperimentConfig, source: str) -> None:
    """DP-SGD settings that need no data: ranges, combinations, and the model's Opacus support."""
    client = config.client
    where = f"{source}: client"
    if client.dp_epsilon < 0:
        raise ConfigError(f"{where}.dp_epsilon must be > 0 (or 0 = unset: use "
                          f"dp_noise_multiplier), got {client.dp_epsilon}")
    if client.dp_noise_multiplier < 0:
        raise ConfigError(f"{where}.dp_noise_multiplier must be >= 0, got "
                          f"{client.dp_noise_multiplier}")
    if client.dp_clip <= 0:
        what = "noise without clipping: " if client.dp_noise_multiplier > 0 else ""
        raise ConfigError(f"{where}.dp_clip = {client.dp_clip}: {what}DP-SGD needs a per-example "
                          "clipping bound dp_clip > 0 (the noise std is dp_noise_multiplier * "
                          "dp_clip)")
    if client.dp_epsilon > 0 and client.dp_noise_multiplier > 0:
        raise ConfigError(f"{where}.dp_epsilon and client.dp_noise_multiplier are both set: give "
                          "one (the noise is derived from the target epsilon)")
    if not 0 < client.dp_delta < 1:
        raise ConfigError(f"{where}.dp_delta must be in (0, 1), got {client.dp_delta}")
    if client.dp_sampling == "poisson" and client.sampler != "shuffle":
        raise ConfigError(f"{where}.sampler = {client.sampler!r} has no effect with DP-SGD's "
                          "Poisson batches (client.dp_sampling = \"poisson\" samples every step "
                          "from all the client's windows); use client.dp_sampling = \"fixed\" "
                          "to train on the sampler's batches")
    if client.local_epochs and client.dp_sampling == "poisson":
        raise ConfigError(f"{where}.local_epochs = {client.local_epochs} with DP-SGD's Poisson "
                          "batches: set the number of steps with client.local_steps and "
                          "client.batch_size (expected windows per round), or use "
                          "client.dp_sampling = \"fixed\"")
    from fl_har.models import build_model

    # The architecture alone decides (channel and class counts do not): a stand-in shape.
    channels = 6 if config.data.channels == "acc+gyro" else 3
    model = build_model(config.model.name, channels, 2, window=config.data.window,
                        head_bias=config.model.head_bias, seed=0)
    problems = _opacus_problems(model)
    if problems:
        raise ConfigError(f"{source}: model.name = {config.model.name!r} cannot be trained with "
                          "client.privacy = \"dp_sgd\" (Opacus ModuleValidator): "
                          + "; ".join(problems))


def _opacus_problems(model) -> list[str]:
    """Opacus' ModuleValidator findings on ``model`` once nn.LSTM is swapped for DPLSTM (as
    :func:`fl_har.privacy.dp_local_update` trains it); empty when Opacus can train it."""
    from fl_har.privacy import UnsupportedModelError, private_copy

    try:
        private_copy(model)
    except UnsupportedModelError as exc:
        return [line.strip() for line in str(exc).splitlines()[1:]]
    return []


def check_attacks(
    config: ExperimentConfig,
    known: Iterable[str],
    resolve_options: Callable[[Mapping[str, Any]], Mapping[str, Any]],
) -> ExperimentConfig:
    """Check ``attacks.names`` and the attack options against the attack library.

    ``known`` are the attack names the library provides; ``resolve_options`` (the library's
    ``resolve_options``) parses and checks the options and fills in their defaults, raising
    ``ValueError`` for a bad one. Returns the config with every option resolved, so a run's
    ``config.toml`` records the value of every option it ran with.
    """
    known = list(known)
    bad = [n for n in config.attacks.names if n not in known]
    if bad:
        raise ConfigError(
            f"attacks.names: unknown attack(s) {', '.join(bad)}; available: {', '.join(known)}"
        )
    try:
        resolved = resolve_options(config.attacks.option_values())
    except ValueError as exc:
        # The library's messages start with the option name ("llbg_confidence: ..."): name the
        # config field the user wrote.
        message = str(exc)
        name = message.split(":", 1)[0]
        field = f"attacks.{message}" if name in dict(config.attacks.options) else f"attacks: {message}"
        raise ConfigError(field) from None
    options = tuple(sorted(resolved.items()))
    return dataclasses.replace(
        config, attacks=dataclasses.replace(config.attacks, options=options)
    )


def parse_override(text: str) -> tuple[str, Any]:
    """``section.key=value`` from the command line; the value is read as TOML when it parses."""
    key, eq, value = text.partition("=")
    key = key.strip()
    if not eq or "." not in key:
        raise ConfigError(
            f"--set {_short(text)}: expected section.key=value, e.g. client.batch_size=50")
    bad = next((c for c in text if ord(c) < 32 and c != "\t" or ord(c) == 127), None)
    if bad is not None:
        raise ConfigError(
            f"--set {_short(text)}: contains the control character U+{ord(bad):04X} (a NUL byte "
            "or a line break); pass a single-line value"
        )
    try:
        document = tomllib.loads(f"v = {value}")
        parsed = document["v"] if list(document) == ["v"] else value.strip()
    except (ValueError, RecursionError):  # TOMLDecodeError, or a number or nesting too large
        parsed = value.strip()
    return key, parsed


def read_toml(
    path: Path, what: str, error: type[ValueError] = ConfigError
) -> dict[str, Any]:
    """A TOML file's tables, or ``error`` naming the file (missing, or not valid TOML)."""
    if not path.is_file():
        raise error(f"{what} {path} does not exist")
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        raise error(
            f"{path}: the file starts with a UTF-8 byte-order mark (BOM), which TOML does not "
            "allow; save it as UTF-8 without BOM (\"UTF-8\", not \"UTF-8 with signature\")"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); TOML files "
            "must be UTF-8: save it with UTF-8 encoding"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None
    except (ValueError, RecursionError) as exc:  # a number too long, or nesting too deep
        raise error(f"{path}: not valid TOML: {type(exc).__name__}: {exc}") from None


def load_config(
    path: str | Path | None = None, overrides: Iterable[str] = ()
) -> ExperimentConfig:
    """Read a TOML config file (or the defaults), apply ``--set`` overrides, validate."""
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        raw = read_toml(path, "config file")
    for text in overrides:
        key, value = parse_override(text)
        section, _, name = key.partition(".")
        if section not in _SECTION_TYPES:
            raise ConfigError(
                f"--set {text!r}: unknown section {section!r}; valid: {', '.join(_SECTION_TYPES)}"
            )
        table = raw.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{section}] must be a table of keys")
        table[name] = value
    return from_dict(raw, source=source)


def to_flat(config: ExperimentConfig) -> dict[str, bool | int | float | str]:
    """Flower run-config form: dotted keys, scalar values (lists become comma-separated strings)."""
    flat: dict[str, bool | int | float | str] = {}
    for section, values in config.to_dict().items():
        for key, value in values.items():
            if isinstance(value, list):
                value = ",".join(str(v) for v in value)
            flat[f"{section}.{key}"] = value
    return flat


def from_flat(flat: Mapping[str, Any], *, source: str = "run config") -> ExperimentConfig:
    """Inverse of :func:`to_flat`; keys outside the known sections are ignored (Flower adds its own)."""
    nested: dict[str, dict[str, Any]] = {}
    for key, value in flat.items():
        section, dot, name = key.partition(".")
        if dot and section in _SECTION_TYPES:
            if isinstance(value, str) and not value and (
                name in ("server_subjects", "eval_subjects", "crash_clients")
                or (section == "adversary" and name in ("clients", "stamp_channels"))
            ):
                value = []
            nested.setdefault(section, {})[name] = value
    return from_dict(nested, source=source)


def describe_defaults(config: ExperimentConfig | None = None) -> str:
    """The default config (or ``config``) as TOML text (``fl-har config show``)."""
    import tomli_w

    return tomli_w.dumps((config or ExperimentConfig()).to_dict())
