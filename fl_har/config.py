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
  ``eval_subjects`` (held out for the server's per-round evaluation).
- ``[model]``: ``name``, ``init`` (``untrained`` or a checkpoint path from ``fl-har pretrain``),
  ``head_bias``.
- ``[client]``: ``batch_size`` (N windows per round), ``local_steps`` (S; 1 = FedSGD),
  ``local_epochs`` (0 = the paper's protocol: one batch of N windows per round in S steps; E >= 1
  = realistic FedAvg: E passes over all the client's windows in shuffled mini-batches of
  ``batch_size``, the last partial batch of each pass dropped), ``lr`` (eta),
  ``sampler``, ``loss`` (``unweighted`` / ``class_weighted``), ``train_mode`` (dropout active as in
  the paper), ``ldp_clip`` (rho, 0 = off), ``ldp_noise`` (sigma, 0 = off), ``ldp_scope``.
- ``[server]``: ``lr`` (server learning rate: the global model moves by ``lr`` times the averaged
  update; 1 = plain FedAvg).
- ``[attacks]``: ``names`` and attack options (every other key; the attack registry defines
  them, ``fl-har attacks`` lists them).
- ``[simulation]``: ``cpus_per_client``, ``timeout``.
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
from fl_har.models import MODELS

# Choices that belong to the config itself; datasets, samplers, normalisations and models come
# from their registries, attacks (and their options) from the attack registry via the front door.
REGIMES = ("frozen", "train")
HAPT_CHANNELS = ("acc", "acc+gyro")
LOSSES = ("unweighted", "class_weighted")
LDP_SCOPES = ("last_layer", "all")
PAPER_ATTACKS = ("llg", "llg_star", "ebi", "llbg", "ilrg")


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
    ``stamp`` (band-limited additive burst) or ``diffusion`` (needs the diffusion generator).
    ``mode``: ``poison`` (train on poisoned data, send honestly), ``boost`` (model replacement,
    Bagdasaryan et al. 2020: the update is scaled by ``boost``; 0 = auto ``n / server.lr`` with
    ``n`` the clients per round) or ``constrain`` (the update is projected into the L2 ball of
    radius ``norm_bound``, to pass norm clipping). ``rounds``: ``"all"``, a round ``"3"`` or
    ranges ``"5-10,12"`` in which the attackers attack (honest otherwise). ``stamp_*``: the stamp
    trigger: ``channels`` (indices, empty = all), ``amplitude`` (peak, in channel stds),
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
    stamp_channels: tuple[int, ...] = ()
    stamp_amplitude: float = 1.0
    stamp_duration: int = 25
    stamp_position: int = -1
    stamp_band_low: float = 0.1
    stamp_band_high: float = 0.2

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
class ExperimentConfig:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    client: ClientConfig = field(default_factory=ClientConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    attacks: AttacksConfig = field(default_factory=AttacksConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
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
    "adversary": AdversaryConfig,
}


def parse_subjects(value: Any, where: str) -> tuple[int, ...]:
    """Subject ids from an int, a list of ints or a string like ``"1-5,8, 10"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if isinstance(value, str):
        items: list[int] = []
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            lo, dash, hi = part.partition("-")
            try:
                if dash:
                    items.extend(range(int(lo), int(hi) + 1))
                else:
                    items.append(int(part))
            except ValueError:
                raise ConfigError(
                    f"{where}: {part!r} is not a subject id or range (expected e.g. 3 or 1-10)"
                ) from None
        return tuple(items)
    if isinstance(value, Iterable):
        out = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int):
                raise ConfigError(f"{where}: subject ids must be integers, got {item!r}")
            out.append(item)
        return tuple(out)
    raise ConfigError(f"{where}: expected a list of subject ids or a string like '1-10,12'")


def _parse_names(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    if isinstance(value, Iterable) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where}: expected a list of names or a comma-separated string")


def _attack_options(values: Mapping[str, Any], where: str) -> tuple[tuple[str, Any], ...]:
    """``[attacks]`` keys besides ``names``: scalar values, checked by the attack registry later."""
    out = []
    for key, value in values.items():
        if not isinstance(value, (bool, int, float, str)):
            raise ConfigError(f"{where}.{key}: expected a single value, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}.{key}: expected a finite number, got {value!r}")
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
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if isinstance(default, float):
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(number):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return number
    if isinstance(default, str) and not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


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
            if key in ("server_subjects", "eval_subjects") or (
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
    if not run.name or "/" in run.name or run.name in (".", ".."):
        raise ConfigError(f"{source}: run.name {run.name!r} must be a plain folder name")
    _choice(data.dataset, available_datasets(), f"{source}: data.dataset")
    _choice(data.channels, HAPT_CHANNELS, f"{source}: data.channels")
    _choice(data.normalization, NORMALIZATIONS, f"{source}: data.normalization")
    if data.window < 2:
        raise ConfigError(f"{source}: data.window must be >= 2 samples, got {data.window}")
    if not 0.0 <= data.overlap < 1.0:
        raise ConfigError(f"{source}: data.overlap must be in [0, 1), got {data.overlap}")
    if data.synthetic_subjects < 1:
        raise ConfigError(f"{source}: data.synthetic_subjects must be >= 1")
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
    if not 2 <= adv.stamp_duration <= config.data.window:
        raise ConfigError(f"{where}.stamp_duration must be in [2, data.window = "
                          f"{config.data.window}] samples, got {adv.stamp_duration}")
    if adv.stamp_position != -1 and not (
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
    if any(c < 0 for c in adv.stamp_channels):
        raise ConfigError(f"{where}.stamp_channels: channel indices must be >= 0")
    if adv.active and config.run.regime != "train":
        raise ConfigError(
            f"{where}: backdoor poisoning needs run.regime = \"train\" (in the frozen regime "
            "the global model never changes, so no backdoor can be planted)"
        )


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
        raise ConfigError(f"attacks: {exc}") from None
    options = tuple(sorted(resolved.items()))
    return dataclasses.replace(
        config, attacks=dataclasses.replace(config.attacks, options=options)
    )


def parse_override(text: str) -> tuple[str, Any]:
    """``section.key=value`` from the command line; the value is read as TOML when it parses."""
    key, eq, value = text.partition("=")
    key = key.strip()
    if not eq or "." not in key:
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. client.batch_size=50")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return key, parsed


def read_toml(
    path: Path, what: str, error: type[ValueError] = ConfigError
) -> dict[str, Any]:
    """A TOML file's tables, or ``error`` naming the file (missing, or not valid TOML)."""
    if not path.is_file():
        raise error(f"{what} {path} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None


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
                name in ("server_subjects", "eval_subjects")
                or (section == "adversary" and name in ("clients", "stamp_channels"))
            ):
                value = []
            nested.setdefault(section, {})[name] = value
    return from_dict(nested, source=source)


def describe_defaults(config: ExperimentConfig | None = None) -> str:
    """The default config (or ``config``) as TOML text (``fl-har config show``)."""
    import tomli_w

    return tomli_w.dumps((config or ExperimentConfig()).to_dict())
