"""Centralised pre-training on the server's subjects, and the checkpoints it produces.

``model.init`` is either ``untrained`` (the paper's seeded initialisation) or a checkpoint written
by ``fl-har pretrain``. Pre-training follows the training setup of Bock et al.'s HAR pipeline
(the DeepConvLSTM/WEAR code that the label-leakage paper, Bock et al. 2025, arXiv:2505.20924,
builds on): Adam with weight decay 1e-6, cross-entropy
weighted by inverse class frequency (:func:`class_weights`) and shuffled mini-batches of windows.
The paper's learning rate of 1e-4 needs about 100 epochs; 1e-3 (the default here) reaches a usable
DeepConvLSTM on HAPT in about a dozen epochs.

Checkpoints are plain ``torch.save`` files holding only tensors, lists, dicts, strings, ints,
floats and bools, so they load with ``torch.load(weights_only=True)`` (no arbitrary unpickling).
"""

from __future__ import annotations

import io
import math
import os
import pickle
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fl_har.atomic import write_bytes_atomic
from fl_har.data import NORMALIZATIONS, HARDataset, Normalizer, fit_normalizer, subject_windows
from fl_har.evaluation import EvalResult, evaluate_model
from fl_har.models import HARModel, build_model
from fl_har.seeding import Stream, derive_seed

CHECKPOINT_FORMAT = "fl-har-pretrain"
CHECKPOINT_VERSION = 1


# Meta keys that model_from_checkpoint / check_compatible rely on, with their required types.
_REQUIRED_META: dict[str, type] = {
    "model": str,
    "in_channels": int,
    "num_classes": int,
    "window": int,
    "head_bias": bool,
    "seed": int,
}

ProgressCallback = Callable[[int, int, dict], None]


class PretrainError(ValueError):
    """Pre-training was asked for something impossible (bad config value or subject split)."""


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, not an fl-har checkpoint, or does not fit the run."""


@dataclass(frozen=True)
class PretrainConfig:
    """Hyper-parameters of centralised pre-training (defaults: see the module docstring)."""

    model: str = "deepconvlstm"
    epochs: int = 12
    lr: float = 1e-3
    weight_decay: float = 1e-6
    batch_size: int = 100
    class_weighted: bool = True
    seed: int = 0
    head_bias: bool = True
    window: int = 50
    overlap: float = 0.5
    normalization: str = "none"


@dataclass
class PretrainResult:
    """Trained weights plus everything needed to rebuild and judge the model (see ``pretrain``)."""

    state_dict: dict[str, torch.Tensor]
    meta: dict


# --------------------------------------------------------------------------- class weights


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse-frequency loss weights, ``w_c = n / (C_present * n_c)``, as a float32 [C] tensor.

    This is scikit-learn's ``class_weight="balanced"`` rule, which Bock et al.'s pipeline uses for
    its weighted cross-entropy: ``n`` windows, ``n_c`` of class c, ``C_present`` the number of
    classes that occur in ``labels``. A perfectly balanced set gets all weights 1. Classes absent
    from ``labels`` get weight 0: they contribute nothing to the loss of this data anyway, and 0
    (instead of the pipeline's shorter, present-classes-only vector) keeps index c = class c.
    """
    array = np.asarray(labels)
    if array.ndim != 1 or array.size == 0:
        raise PretrainError(f"labels must be a non-empty 1-D array, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise PretrainError(f"labels must be integer class ids, got dtype {array.dtype}")
    if array.min() < 0 or array.max() >= num_classes:
        raise PretrainError(
            f"labels hold class ids from {array.min()} to {array.max()}; "
            f"expected ids in [0, {num_classes - 1}] for {num_classes} classes"
        )
    counts = np.bincount(array, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes, dtype=np.float64)
    weights[present] = array.size / (present.sum() * counts[present])
    return torch.as_tensor(weights, dtype=torch.float32)


# --------------------------------------------------------------------------- validation


def _is_int_at_least(value: object, minimum: int) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= minimum


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _validate_config(config: PretrainConfig) -> None:
    checks = [
        (_is_int_at_least(config.epochs, 1), "epochs", "an integer >= 1"),
        (_is_number(config.lr) and config.lr > 0, "lr", "a finite number > 0"),
        (
            _is_number(config.weight_decay) and config.weight_decay >= 0,
            "weight_decay",
            "a finite number >= 0",
        ),
        (_is_int_at_least(config.batch_size, 1), "batch_size", "an integer >= 1"),
        (_is_int_at_least(config.seed, 0), "seed", "an integer >= 0"),
        (_is_int_at_least(config.window, 1), "window", "an integer >= 1"),
        (
            _is_number(config.overlap) and 0 <= config.overlap < 1,
            "overlap",
            "a fraction in [0, 1)",
        ),
        (config.normalization in NORMALIZATIONS, "normalization", f"one of {NORMALIZATIONS}"),
        (isinstance(config.class_weighted, bool), "class_weighted", "true or false"),
        (isinstance(config.head_bias, bool), "head_bias", "true or false"),
    ]
    for ok, name, expected in checks:
        if not ok:
            value = getattr(config, name)
            raise PretrainError(f"pretrain config: {name} = {value!r}, expected {expected}")


def _validate_subjects(
    dataset: HARDataset, train_subjects: tuple[int, ...], eval_subjects: tuple[int, ...]
) -> None:
    if not train_subjects:
        raise PretrainError("pretrain needs at least one training subject, got none")
    available = set(dataset.subjects)
    for role, subjects in (("training", train_subjects), ("evaluation", eval_subjects)):
        unknown = sorted(set(subjects) - available)
        if unknown:
            raise PretrainError(
                f"{role} subject(s) {unknown} are not in the dataset; "
                f"available subjects: {sorted(available)}"
            )
    for role, subjects in (("training", train_subjects), ("evaluation", eval_subjects)):
        repeated = sorted({s for s in subjects if subjects.count(s) > 1})
        if repeated:
            raise PretrainError(f"{role} subject(s) {repeated} are listed more than once")
    shared = sorted(set(train_subjects) & set(eval_subjects))
    if shared:
        raise PretrainError(
            f"subject(s) {shared} are both training and held-out evaluation subjects; "
            "held-out subjects must not be trained on"
        )


# --------------------------------------------------------------------------- training


def _stack_windows(
    dataset: HARDataset, subjects: Iterable[int], config: PretrainConfig
) -> tuple[np.ndarray, np.ndarray]:
    """All windows of ``subjects`` concatenated, in subject order."""
    parts = [
        subject_windows(dataset, subject, window=config.window, overlap=config.overlap)
        for subject in subjects
    ]
    x = np.concatenate([part.x for part in parts]).astype(np.float32, copy=False)
    y = np.concatenate([part.y for part in parts]).astype(np.int64, copy=False)
    return x, y


def _train_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: np.ndarray,
    y: torch.Tensor,
    *,
    normalizer: Normalizer,
    batch_size: int,
    loss_weights: torch.Tensor | None,
    order_rng: np.random.Generator,
) -> float:
    """One pass over (x, y) in freshly shuffled mini-batches; returns the window-mean loss.

    Each mini-batch is normalised on its own, as the ``minmax_batch`` rule requires (for the other
    kinds this equals normalising everything once). The last batch may be smaller.
    """
    model.train()
    order = order_rng.permutation(len(y))
    total_loss = 0.0
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        inputs = torch.as_tensor(normalizer(x[index]), dtype=torch.float32)
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(inputs), y[torch.as_tensor(index)], weight=loss_weights)
        loss.backward()
        optimizer.step()
        total_loss += float(loss.detach()) * len(index)
    return total_loss / len(order)


def _normalization_meta(normalizer: Normalizer) -> dict[str, Any]:
    """The normaliser's kind and, for ``standardize``, its per-channel statistics as lists."""
    meta: dict[str, Any] = {"normalization": normalizer.kind}
    if normalizer.kind == "standardize":
        meta["normalization_mean"] = [float(v) for v in np.asarray(normalizer.mean).ravel()]
        meta["normalization_std"] = [float(v) for v in np.asarray(normalizer.std).ravel()]
    return meta


def untrained_baseline(
    dataset: HARDataset,
    train_subjects: Iterable[int],
    eval_subjects: Iterable[int],
    config: PretrainConfig,
) -> EvalResult:
    """Held-out score of the model ``pretrain`` starts from (the paper's untrained init), on the
    same windows and normalisation: the reference a reader needs to see that "trained" means it.
    """
    normalizer = fit_normalizer(config.normalization, dataset, tuple(train_subjects))
    x, y = _stack_windows(dataset, tuple(eval_subjects), config)
    model = build_model(
        config.model, dataset.num_channels, dataset.num_classes, window=config.window,
        head_bias=config.head_bias, seed=config.seed,
    )
    return evaluate_model(model, x, y, batch_size=config.batch_size, normalizer=normalizer)


def pretrain(
    dataset: HARDataset,
    train_subjects: Iterable[int],
    eval_subjects: Iterable[int],
    config: PretrainConfig,
    progress: ProgressCallback | None = None,
) -> PretrainResult:
    """Train a freshly initialised model centrally on ``train_subjects`` (see module docstring).

    The model starts from the paper's untrained initialisation, ``build_model(..., seed=seed)``.
    The normaliser is fitted on the training subjects only and applied to both training and
    held-out windows. After every epoch, ``progress(epoch, epochs, metrics)`` is called with the
    1-based epoch and ``metrics = {"loss", "seconds"}`` plus ``"eval_accuracy"`` and
    ``"eval_macro_f1"`` when there are held-out subjects; the same dicts form ``meta["history"]``.
    ``meta["untrained_eval_macro_f1"]`` (and accuracy) score the initial model on the same
    held-out windows, before any training.

    Determinism: the batch order comes from a numpy ``Generator`` and dropout from torch's global
    RNG (``nn.Dropout`` cannot take a generator), which is seeded with ``torch.manual_seed`` from
    ``config.seed`` inside ``torch.random.fork_rng``, so equal configs give identical weights on
    the same machine and the caller's global RNG state is left untouched. Thread count is the
    caller's choice (``torch.set_num_threads``).
    """
    _validate_config(config)
    train_ids = tuple(int(s) for s in train_subjects)
    eval_ids = tuple(int(s) for s in eval_subjects)
    _validate_subjects(dataset, train_ids, eval_ids)

    normalizer = fit_normalizer(config.normalization, dataset, train_ids)
    x_train, y_train = _stack_windows(dataset, train_ids, config)
    targets = torch.as_tensor(y_train)
    held_out = _stack_windows(dataset, eval_ids, config) if eval_ids else None
    for role, subjects, labels in (
        ("training", train_ids, y_train),
        ("evaluation", eval_ids, None if held_out is None else held_out[1]),
    ):
        if labels is not None and len(labels) == 0:
            raise PretrainError(
                f"{role} subject(s) {list(subjects)} yield no windows of {config.window} samples"
            )
    loss_weights = class_weights(y_train, dataset.num_classes) if config.class_weighted else None

    model = build_model(
        config.model,
        dataset.num_channels,
        dataset.num_classes,
        window=config.window,
        head_bias=config.head_bias,
        seed=config.seed,
    )
    baseline = untrained_baseline(dataset, train_ids, eval_ids, config) if eval_ids else None
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    order_rng = np.random.default_rng(derive_seed(config.seed, Stream.PRETRAIN_ORDER))
    history: list[dict[str, float]] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, Stream.PRETRAIN_DROPOUT))
        for epoch in range(1, config.epochs + 1):
            start = time.perf_counter()
            metrics = {
                "loss": _train_epoch(
                    model,
                    optimizer,
                    x_train,
                    targets,
                    normalizer=normalizer,
                    batch_size=config.batch_size,
                    loss_weights=loss_weights,
                    order_rng=order_rng,
                )
            }
            if held_out is not None:
                # Evaluation batches as large as training batches, so that minmax_batch
                # scales held-out windows the way the model saw its training windows.
                result = evaluate_model(
                    model,
                    held_out[0],
                    held_out[1],
                    batch_size=config.batch_size,
                    normalizer=normalizer,
                )
                metrics["eval_accuracy"] = result.accuracy
                metrics["eval_macro_f1"] = result.macro_f1
            metrics["seconds"] = time.perf_counter() - start
            history.append(metrics)
            if progress is not None:
                progress(epoch, config.epochs, dict(metrics))
    model.eval()

    meta: dict[str, Any] = {
        "model": config.model,
        "in_channels": int(dataset.num_channels),
        "num_classes": int(dataset.num_classes),
        "window": config.window,
        "overlap": config.overlap,
        "head_bias": config.head_bias,
        "dataset": str(dataset.name),
        "class_names": [str(name) for name in dataset.class_names],
        "channel_names": [str(name) for name in dataset.channel_names],
        "train_subjects": list(train_ids),
        "eval_subjects": list(eval_ids),
        "train_windows": len(y_train),
        "eval_windows": 0 if held_out is None else len(held_out[1]),
        "epochs": config.epochs,
        "lr": config.lr,
        "weight_decay": config.weight_decay,
        "batch_size": config.batch_size,
        "class_weighted": config.class_weighted,
        "seed": config.seed,
        **_normalization_meta(normalizer),
        "history": history,
        "config": asdict(config),
    }
    if held_out is not None:
        meta["eval_accuracy"] = history[-1]["eval_accuracy"]
        meta["eval_macro_f1"] = history[-1]["eval_macro_f1"]
        meta["untrained_eval_accuracy"] = baseline.accuracy
        meta["untrained_eval_macro_f1"] = baseline.macro_f1
    state = {name: t.detach().clone() for name, t in model.state_dict().items()}
    return PretrainResult(state_dict=state, meta=meta)


# --------------------------------------------------------------------------- checkpoints


def _checked_plain(value: Any, where: str) -> Any:
    """``value`` with tuples turned into lists; raises if it holds anything weights_only rejects."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_checked_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise CheckpointError(f"{where}: key {key!r} is not a string")
            out[key] = _checked_plain(item, f"{where}.{key}")
        return out
    raise CheckpointError(
        f"{where} is a {type(value).__name__}; checkpoint meta may hold only "
        "dicts, lists, str, int, float and bool"
    )


def save_checkpoint(path: str | os.PathLike[str], result: PretrainResult) -> None:
    """Write ``result`` to ``path`` atomically (temporary file in the same folder + ``os.replace``).

    A reader never sees a half-written checkpoint, and a crash leaves any old file intact.
    """
    target = Path(path)
    state: dict[str, torch.Tensor] = {}
    for name, tensor in result.state_dict.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise CheckpointError(
                f"state_dict entry {name!r} is a {type(tensor).__name__}; expected str -> Tensor"
            )
        state[name] = tensor.detach().cpu().contiguous().clone()
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "state_dict": state,
        "meta": _checked_plain(result.meta, "meta"),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes_atomic(target, buffer.getvalue())


def _validate_payload(payload: Any, path: Path) -> PretrainResult:
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not an fl-har checkpoint (expected a file written by `fl-har pretrain`)"
        )
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {payload.get('version')!r}, "
            f"this fl-har reads version {CHECKPOINT_VERSION}"
        )
    state, meta = payload.get("state_dict"), payload.get("meta")
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{path}: 'state_dict' is not a mapping of names to tensors")
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: 'meta' is missing or not a dict")
    for key, expected in _REQUIRED_META.items():
        value = meta.get(key)
        # bool is an int subclass: an int field must not silently accept True/False.
        wrong_bool = expected is int and isinstance(value, bool)
        if key not in meta or not isinstance(value, expected) or wrong_bool:
            raise CheckpointError(
                f"{path}: meta field {key!r} is {value!r}; expected a {expected.__name__}"
            )
    return PretrainResult(state_dict=state, meta=meta)


def _describe_load_error(error: Exception) -> str:
    """A one-line reason for a failed ``torch.load`` (torch's own messages span many lines)."""
    text = str(error)
    if isinstance(error, pickle.UnpicklingError) and "Weights only load failed" in text:
        return "it holds Python objects that weights_only loading refuses to unpickle"
    first_line = re.sub(r"\x1b\[[0-9;]*m", "", text).strip().splitlines()[:1]
    return f"torch.load failed: {type(error).__name__}: {first_line[0] if first_line else ''}"


def load_checkpoint(path: str | os.PathLike[str]) -> PretrainResult:
    """Read a checkpoint of :func:`save_checkpoint` with ``torch.load(weights_only=True)``."""
    source = Path(path)
    if not source.exists():
        raise CheckpointError(f"checkpoint {source} does not exist")
    if not source.is_file():
        raise CheckpointError(f"checkpoint {source} is not a file")
    try:
        payload = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        raise CheckpointError(
            f"{source} is not a readable fl-har checkpoint ({_describe_load_error(error)})"
        ) from error
    return _validate_payload(payload, source)


def model_from_checkpoint(result: PretrainResult) -> HARModel:
    """The model described by ``result.meta`` with the checkpoint's weights loaded (eval mode)."""
    meta = result.meta
    try:
        model = build_model(
            meta["model"],
            meta["in_channels"],
            meta["num_classes"],
            window=meta["window"],
            head_bias=meta["head_bias"],
            seed=meta["seed"],
        )
    except KeyError as error:
        raise CheckpointError(f"checkpoint meta has no field {error.args[0]!r}") from None
    except ValueError as error:  # ModelConfigError: unknown name, impossible shapes
        raise CheckpointError(f"checkpoint meta describes no buildable model: {error}") from None
    try:
        model.load_state_dict(result.state_dict, strict=True)
    except RuntimeError as error:
        raise CheckpointError(
            f"checkpoint weights do not fit a {meta['model']} model with "
            f"{meta['in_channels']} channels and {meta['num_classes']} classes: {error}"
        ) from None
    model.eval()
    return model


def check_compatible(
    meta: Mapping[str, Any],
    *,
    model: str,
    in_channels: int,
    num_classes: int,
    window: int,
    head_bias: bool,
) -> None:
    """Raise :class:`CheckpointError` naming every field in which checkpoint and run differ."""
    wanted = {
        "model": (model, "the {} model"),
        "in_channels": (in_channels, "{} input channels"),
        "num_classes": (num_classes, "{} classes"),
        "window": (window, "windows of {} samples"),
        "head_bias": (head_bias, "head_bias = {}"),
    }
    problems = []
    for field, (run_value, phrase) in wanted.items():
        if field not in meta:
            problems.append(f"{field}: the checkpoint does not record it")
        elif meta[field] != run_value:
            problems.append(
                f"{field}: checkpoint was trained for {phrase.format(meta[field])}, "
                f"run has {phrase.format(run_value)}"
            )
    if problems:
        raise CheckpointError("checkpoint does not fit this run: " + "; ".join(problems))
