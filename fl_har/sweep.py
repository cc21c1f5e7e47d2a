"""Sweeps: a grid of experiments declared in one TOML file, expanded into runs.

A sweep file has three parts::

    [sweep]
    name = "paper-sampling"      # folder under `out`
    out = "results"
    folds = 5                    # k for cells whose model.init = "pretrained"
    [sweep.pretrain]             # centralised pre-training of those cells' models (cached)
    epochs = 12
    lr = 0.001
    batch_size = 100

    [base.run]                   # an experiment config (any section of fl_har.config) that every
    rounds = 15                  # cell starts from
    [base.data]
    dataset = "hapt"

    [grid]                       # the axes; the cells are their cartesian product
    "client.sampler" = ["shuffle", "sequential", "balanced"]   # a config key and its values
    [grid.state]                                                # a named axis: each value is a
    untrained = { "model.init" = "untrained" }                  # set of config overrides
    trained = { "model.init" = "pretrained" }

``model.init = "pretrained"`` is the leave-subjects-out protocol at an affordable cost: the
dataset's subjects (sorted) are split into ``folds`` contiguous folds; the cell becomes one run per
fold whose clients are that fold's subjects and whose model was pre-trained on all other folds
(which the server also holds as auxiliary data). Pre-training runs once per (dataset, channels,
model, window, normalisation, head bias, seed, folds, fold, epochs, lr, batch size) and is cached as
a checkpoint under ``<out>/pretrained/``, with its held-out (fold ``i``) macro-F1.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fl_har.atomic import write_bytes_atomic
from fl_har.config import (
    ConfigError,
    ExperimentConfig,
    check_folder_name,
    from_dict,
    parse_override,
    read_toml,
)

PRETRAINED = "pretrained"
MANIFEST = "manifest.json"


class SweepError(ValueError):
    """A sweep file is invalid; the message names the file, key or value."""


@dataclass(frozen=True)
class PretrainSpec:
    epochs: int = 12
    lr: float = 1e-3
    batch_size: int = 100


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: a cell, or one fold of a cell with a pre-trained model."""

    run_id: str  # folder name under <sweep>/cells/
    cell_id: str
    axes: dict[str, str]
    config: ExperimentConfig
    fold: int | None = None  # 1-based
    pretrain_key: str | None = None  # checkpoint this run needs (before it can start)


@dataclass(frozen=True)
class PretrainJob:
    key: str
    checkpoint: Path
    config: ExperimentConfig  # data/model settings; data.server_subjects = training subjects
    train_subjects: tuple[int, ...]
    eval_subjects: tuple[int, ...]
    spec: PretrainSpec


@dataclass
class Sweep:
    name: str
    source: Path
    out_dir: Path  # the sweep's folder
    pretrained_dir: Path
    folds: int
    pretrain: PretrainSpec
    runs: list[SweepRun] = field(default_factory=list)
    pretrain_jobs: dict[str, PretrainJob] = field(default_factory=dict)


def _axis_values(path: Path, name: str, values: Any) -> list[tuple[str, dict[str, Any]]]:
    """``[(label, overrides)]`` of one axis."""
    if isinstance(values, list):
        if not values:
            raise SweepError(f"{path}: grid axis {name!r} has no values")
        if "." not in name:
            raise SweepError(
                f"{path}: grid axis {name!r} with a list must be a config key like client.sampler; "
                "use a table of named override sets for a named axis"
            )
        return [(str(v).replace(",", "+"), {name: v}) for v in values]
    if isinstance(values, Mapping):
        if not values:
            raise SweepError(f"{path}: grid axis {name!r} has no values")
        out = []
        for label, overrides in values.items():
            if not isinstance(overrides, Mapping) or any("." not in k for k in overrides):
                raise SweepError(
                    f"{path}: grid.{name}.{label} must be a table of config keys like "
                    '{ "model.init" = "untrained" }'
                )
            out.append((label, dict(overrides)))
        return out
    raise SweepError(f"{path}: grid axis {name!r} must be a list of values or a table")


def _nested(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    nested = {section: dict(values) for section, values in base.items()}
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        nested.setdefault(section, {})[name] = value
    return nested


def folds_of(subjects: tuple[int, ...], k: int) -> list[tuple[int, ...]]:
    """``k`` contiguous folds of the sorted subjects (sizes differ by at most one)."""
    if not 2 <= k <= len(subjects):
        raise SweepError(f"sweep.folds = {k}: need 2 <= folds <= {len(subjects)} subjects")
    return [tuple(int(s) for s in part) for part in np.array_split(np.array(sorted(subjects)), k)]


def _pretrain_key(config: ExperimentConfig, folds: int, fold: int, spec: PretrainSpec) -> str:
    d, m = config.data, config.model
    identity = {
        "dataset": d.dataset, "root": d.root, "channels": d.channels, "synthetic": d.synthetic_subjects,
        "window": d.window, "overlap": d.overlap, "normalization": d.normalization,
        "model": m.name, "head_bias": m.head_bias, "seed": config.run.seed,
        "folds": folds, "fold": fold, "epochs": spec.epochs, "lr": spec.lr,
        "batch_size": spec.batch_size,
    }
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    return f"{d.dataset}-{m.name}-fold{fold}of{folds}-{digest}"


def load_sweep(
    path: str | Path, overrides: list[str] | None = None, *, name: str | None = None
) -> Sweep:
    """Read and expand a sweep file; every cell's config is validated before anything runs.

    ``overrides`` (``section.key=value``) apply to the base config of every cell; ``name``
    replaces ``sweep.name`` (the sweep's folder).
    """
    from fl_har.federation import dataset_for

    path = Path(path)
    raw = read_toml(path, "sweep file", SweepError)
    unknown = set(raw) - {"sweep", "base", "grid"}
    if unknown:
        raise SweepError(f"{path}: unknown table(s) {sorted(unknown)}; valid: sweep, base, grid")
    meta = dict(raw.get("sweep", {}))
    pretrain_raw = meta.pop("pretrain", {})
    given = name is not None
    name = name if given else meta.pop("name", path.stem)
    meta.pop("name", None)
    if not isinstance(name, str):
        raise SweepError(f"{path}: sweep.name must be a string, got {name!r}")
    try:
        # the sweep's folder is <out>/<name>: a path here would write outside `out`
        check_folder_name(name, "--name" if given else f"{path}: sweep.name")
    except ConfigError as exc:
        raise SweepError(str(exc)) from None
    out = Path(str(meta.pop("out", "results")))
    folds = meta.pop("folds", 5)
    if meta:
        raise SweepError(f"{path}: unknown key(s) in [sweep]: {sorted(meta)}; valid: name, out, "
                         "folds, pretrain")
    if isinstance(folds, bool) or not isinstance(folds, int):
        raise SweepError(f"{path}: sweep.folds must be an integer")
    try:
        pretrain = PretrainSpec(**pretrain_raw)
    except TypeError:
        raise SweepError(f"{path}: [sweep.pretrain] accepts epochs, lr, batch_size") from None
    base = _nested(raw.get("base", {}), dict(parse_override(o) for o in overrides or []))
    axes = [(axis, _axis_values(path, axis, values)) for axis, values in raw.get("grid", {}).items()]
    sweep = Sweep(name, path, out / name, out / "pretrained", folds, pretrain)
    seen: set[str] = set()
    for combo in itertools.product(*[values for _, values in axes]) if axes else [()]:
        labels = {axis: label for (axis, _), (label, _) in zip(axes, combo, strict=True)}
        overrides: dict[str, Any] = {}
        for _, cell_overrides in combo:
            overrides.update(cell_overrides)
        cell_id = "-".join(labels.values()) or "cell"
        if cell_id in seen:
            raise SweepError(f"{path}: two cells are both named {cell_id!r}; give axis values "
                             "distinct names")
        seen.add(cell_id)
        nested = _nested(base, overrides)
        nested.setdefault("run", {})["name"] = cell_id
        pretrained = nested.get("model", {}).get("init") == PRETRAINED
        if pretrained:
            nested["model"]["init"] = "untrained"  # placeholder until the fold's checkpoint
        try:
            config = from_dict(nested, source=f"{path} cell {cell_id}")
        except ConfigError as exc:
            raise SweepError(str(exc)) from None
        if not pretrained:
            sweep.runs.append(SweepRun(cell_id, cell_id, labels, config))
            continue
        subjects = tuple(dataset_for(config).subjects)
        for fold, fold_subjects in enumerate(folds_of(subjects, folds), start=1):
            others = tuple(s for s in subjects if s not in fold_subjects)
            key = _pretrain_key(config, folds, fold, pretrain)
            checkpoint = sweep.pretrained_dir / f"{key}.pt"
            run_id = f"{cell_id}-fold{fold}"
            fold_config = config.replace(**{
                "run.name": run_id,
                "model.init": str(checkpoint),
                "data.clients": list(fold_subjects),
                "data.server_subjects": list(others),
                "data.eval_subjects": [],
            })
            sweep.runs.append(SweepRun(run_id, cell_id, labels, fold_config, fold, key))
            sweep.pretrain_jobs.setdefault(
                key, PretrainJob(key, checkpoint, fold_config, others, fold_subjects, pretrain)
            )
    return sweep


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON atomically: readers never see half a file."""
    write_bytes_atomic(path, json.dumps(payload, indent=2, sort_keys=True).encode("utf-8"))


def read_manifest(sweep_dir: Path) -> dict[str, Any]:
    path = Path(sweep_dir) / MANIFEST
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise SweepError(f"{path} is corrupt (not JSON); delete it to rebuild") from None
