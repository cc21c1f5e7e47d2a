"""Server-side calibration on the current model, cached per model version.

LLG+ / LLG* (Wainakh et al., PoPETs 2022, Sec. 4.2) calibrate the per-label impact and the
per-class offsets with batches of B inputs that all carry one class i; trained LLBG (Gat & Sharif,
AISec 2024) estimates per-class confidences on the server's auxiliary windows.

Only the classification layer's gradient is needed, and for mean cross-entropy it is analytic:
``grad_W = (1/B) sum_n (p_n - y_n) h_n^T``. So a calibration batch needs ONE FORWARD pass (the head
input ``h`` is captured with a forward hook), not forward+backward; the values are identical to
what autograd returns. Batches are stacked into larger forward calls unless the model has
BatchNorm in train mode (batch statistics would then couple the batches).

Side-effect free: module train/eval modes and all buffers (BatchNorm running statistics) are
restored, no ``.grad`` is touched, and dropout randomness comes from ``context.seed`` inside
``torch.random.fork_rng`` so the global RNG state is unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator

import numpy as np
import torch

from attacks._common import stable_softmax
from attacks.inputs import DUMMY_KINDS, AttackContext, AttackError
from attacks.options import AttackOption, at_least, one_of

DUMMY_KIND = AttackOption(
    "dummy_kind", "normal", "LLG*: kind of dummy inputs for calibration", one_of(DUMMY_KINDS)
)
CALIBRATION_REPEATS = AttackOption(
    "calibration_repeats", 10,
    "LLG+ / LLG*: calibration batches per class (Wainakh et al. average 10)", at_least(1),
)

#: Calibrations kept in memory (one per model version and setting; a round needs a handful).
CACHE_SIZE = 32
#: Forward calls stack calibration batches up to this many windows (when batches are independent).
STACK_LIMIT = 512

_cache: OrderedDict[Hashable, object] = OrderedDict()
_cache_lock = threading.Lock()


def clear_calibration_cache() -> None:
    """Forget every cached calibration (e.g. after reusing a ``model_version`` for a new model)."""
    with _cache_lock:
        _cache.clear()


def cached(key: Hashable, compute: Callable[[], object]) -> object:
    """Return the cached value for ``key``, computing (and storing) it on a miss (LRU)."""
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    value = compute()
    with _cache_lock:
        _cache[key] = value
        _cache.move_to_end(key)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return value


def model_key(context: AttackContext, attack: str) -> Hashable:
    """``("version", model_version)`` if given, else a SHA-1 of the model's full state."""
    if context.model_version is not None:
        return ("version", context.model_version)
    model = context.require_model(attack)
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(type(model).__qualname__.encode())
    for name, tensor in model.state_dict().items():
        array = tensor.detach().to("cpu").contiguous().numpy()
        digest.update(f"{name}:{array.dtype}:{array.shape}".encode())
        digest.update(array)
    return ("sha1", digest.hexdigest())


def head_layer(model: torch.nn.Module, num_classes: int, width: int, attack: str) -> torch.nn.Linear:
    """The model's ``head`` (a Linear C x d matching the update), or :class:`AttackError`."""
    head = getattr(model, "head", None)
    if not isinstance(head, torch.nn.Linear):
        raise AttackError(f"{attack}: the model needs its final linear layer as attribute `head`")
    if tuple(head.weight.shape) != (num_classes, width):
        raise AttackError(
            f"{attack}: model.head.weight has shape {tuple(head.weight.shape)}, "
            f"the update has ({num_classes}, {width})"
        )
    return head


def head_parameters(model: torch.nn.Module, num_classes: int, width: int, attack: str
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """Current ``head.weight`` [C, d] and ``head.bias`` [C] (or None) as float64 arrays."""
    head = head_layer(model, num_classes, width, attack)
    weight = head.weight.detach().to("cpu", torch.float64).numpy()
    bias = None if head.bias is None else head.bias.detach().to("cpu", torch.float64).numpy()
    return weight, bias


def _batch_coupled(model: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training
               for m in model.modules())


@contextlib.contextmanager
def _model_session(model: torch.nn.Module, train_mode: bool, torch_seed: int
                   ) -> Iterator[torch.nn.Module]:
    """Put ``model`` in the requested mode with seeded dropout; restore modes and buffers after."""
    modes = [(module, module.training) for module in model.modules()]
    buffers = {name: buf.detach().clone() for name, buf in model.named_buffers()}
    devices = [p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"][:1]
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(torch_seed)
            model.train(train_mode)
            yield model
    finally:
        for module, was_training in modes:
            module.training = was_training
        with torch.no_grad():
            for name, buf in model.named_buffers():
                buf.copy_(buffers[name])


def forward_head(model: torch.nn.Module, batches: list[np.ndarray], head: torch.nn.Linear,
                 attack: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Run ``batches`` through the model; return per-batch head inputs [B, d] and logits [B, C].

    Must be called inside :func:`_model_session`. Stacks independent batches into one call.
    """
    captured: list[tuple[torch.Tensor, torch.Tensor]] = []

    def hook(_module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        captured.append((inputs[0], output))

    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
    sizes = [b.shape[0] for b in batches]
    groups: list[list[int]] = []
    if _batch_coupled(model):
        groups = [[i] for i in range(len(batches))]
    else:
        for i, size in enumerate(sizes):
            if groups and sum(sizes[j] for j in groups[-1]) + size <= max(STACK_LIMIT, size):
                groups[-1].append(i)
            else:
                groups.append([i])
    embeddings: list[np.ndarray] = []
    logits: list[np.ndarray] = []
    handle = head.register_forward_hook(hook)
    try:
        for group in groups:
            inputs = torch.from_numpy(np.concatenate([batches[i] for i in group]))
            inputs = inputs.to(device=device, dtype=dtype)
            captured.clear()
            output = model(inputs)
            if len(captured) != 1:
                raise AttackError(f"{attack}: model.head was called {len(captured)} times in one forward")
            h, z = captured[0]
            if h.ndim != 2 or h.shape[0] != inputs.shape[0]:
                raise AttackError(
                    f"{attack}: model.head received shape {tuple(h.shape)}; calibration needs [batch, features]"
                )
            if output is not z and not torch.equal(output, z):
                raise AttackError(f"{attack}: the model's output is not model.head's output (logits)")
            h64 = h.detach().to("cpu", torch.float64).numpy()
            z64 = z.detach().to("cpu", torch.float64).numpy()
            start = 0
            for i in group:
                embeddings.append(h64[start:start + sizes[i]])
                logits.append(z64[start:start + sizes[i]])
                start += sizes[i]
    finally:
        handle.remove()
    return embeddings, logits


def one_class_row_sums(embeddings: np.ndarray, logits: np.ndarray, cls: int) -> np.ndarray:
    """Row sums of ``grad_W`` for a batch labelled entirely ``cls``.

    ``rowsum[j] = (1/B) sum_n (p[n,j] - [j == cls]) * s_n`` with ``s_n = sum_k h[n,k]``
    (mean cross-entropy; attacks.md "Row sums").
    """
    probs = stable_softmax(logits)
    totals = embeddings.sum(axis=1)
    row_sums = (probs * totals[:, None]).mean(axis=0)
    row_sums[cls] -= totals.mean()
    return row_sums


def _rng(context: AttackContext, purpose: str) -> np.random.Generator:
    tag = int.from_bytes(hashlib.sha1(purpose.encode()).digest()[:4], "little")
    return np.random.default_rng(np.random.SeedSequence([context.seed, tag]))


def _dummy_batch(rng: np.random.Generator, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    if kind == "zeros":
        return np.zeros(shape, dtype=np.float32)
    if kind == "ones":
        return np.ones(shape, dtype=np.float32)
    if kind == "random_int":
        # torch's Tensor.random_() on float32: integers in [0, 2**mantissa] = [0, 2**24].
        return rng.integers(0, 2**24, size=shape, endpoint=True).astype(np.float32)
    return rng.standard_normal(shape, dtype=np.float32)


def llg_calibration(context: AttackContext, source: str, batch_size: int, num_classes: int,
                    width: int, attack: str) -> tuple[float, np.ndarray]:
    """LLG+ (``source="aux"``) / LLG* (``source="dummy"``) calibration, cached.

    For every class i (with auxiliary windows, for LLG+) and every repeat, one batch of
    ``batch_size`` inputs all labelled i gives row sums ``rowsum_i``. Returns

    - ``mean_self``: mean over batches of ``rowsum_i[i]`` (per-window impact times the batch
      mean; the attack divides by N and multiplies by (1 + 1/C));
    - ``offsets[j]``: mean over batches of classes i != j of ``rowsum_i[j]``.
    """
    model = context.require_model(attack)
    key = ("llg", source, model_key(context, attack),
           context.aux_digest() if source == "aux" else context.dummy_kind,
           context.seed, context.calibration_repeats, context.model_train_mode,
           batch_size, num_classes, width)

    def compute() -> tuple[float, np.ndarray]:
        head = head_layer(model, num_classes, width, attack)
        rng = _rng(context, f"llg-{source}")
        classes, batches = _llg_batches(context, source, batch_size, num_classes, rng, attack)
        with _model_session(model, context.model_train_mode, int(rng.integers(2**63 - 1))):
            embeddings, logits = forward_head(model, batches, head, attack)
        row_sums = np.stack([one_class_row_sums(h, z, c)
                             for h, z, c in zip(embeddings, logits, classes)])
        classes_arr = np.asarray(classes)
        mean_self = float(row_sums[np.arange(len(classes)), classes_arr].mean())
        offsets = np.empty(num_classes)
        for j in range(num_classes):
            others = classes_arr != j
            if not others.any():
                raise AttackError(f"{attack}: no calibration batch of a class other than {j}")
            offsets[j] = row_sums[others, j].mean()
        offsets.setflags(write=False)
        return mean_self, offsets

    return cached(key, compute)  # type: ignore[return-value]


def _llg_batches(context: AttackContext, source: str, batch_size: int, num_classes: int,
                 rng: np.random.Generator, attack: str) -> tuple[list[int], list[np.ndarray]]:
    classes: list[int] = []
    batches: list[np.ndarray] = []
    if source == "dummy":
        if context.input_shape is None:
            raise AttackError(f"{attack} needs input_shape=(window, channels) for its dummy inputs")
        shape = (batch_size, *context.input_shape)
        for cls in range(num_classes):
            for _ in range(context.calibration_repeats):
                classes.append(cls)
                batches.append(_dummy_batch(rng, context.dummy_kind, shape))
        return classes, batches
    windows, labels = context.require_aux(attack, num_classes)
    available = [c for c in range(num_classes) if np.any(labels == c)]
    if len(available) < 2:
        raise AttackError(f"{attack} needs auxiliary windows of at least 2 classes, got {available}")
    for cls in available:
        pool = np.flatnonzero(labels == cls)
        for _ in range(context.calibration_repeats):
            pick = rng.choice(pool, size=batch_size, replace=pool.size < batch_size)
            classes.append(cls)
            batches.append(windows[pick])
    return classes, batches


def class_confidences(context: AttackContext, batch_size: int, num_classes: int, width: int,
                      attack: str) -> np.ndarray:
    """Mean softmax probability of the true class over the aux windows of each class, cached.

    Trained LLBG (Gat & Sharif 2024). Classes without auxiliary windows get the mean confidence
    of the classes that have some. Windows are fed in chunks of ``batch_size`` (the client's
    step size) in the context's train/eval mode.
    """
    model = context.require_model(attack)
    windows, labels = context.require_aux(attack, num_classes)
    key = ("confidence", model_key(context, attack), context.aux_digest(), context.seed,
           context.model_train_mode, batch_size, num_classes, width)

    def compute() -> np.ndarray:
        head = head_layer(model, num_classes, width, attack)
        rng = _rng(context, "llbg-confidence")
        chunks = [windows[i:i + batch_size] for i in range(0, windows.shape[0], batch_size)]
        with _model_session(model, context.model_train_mode, int(rng.integers(2**63 - 1))):
            _, logits = forward_head(model, chunks, head, attack)
        probs = stable_softmax(np.concatenate(logits))
        true_class_prob = probs[np.arange(labels.shape[0]), labels]
        present = np.bincount(labels, minlength=num_classes) > 0
        sums = np.bincount(labels, weights=true_class_prob, minlength=num_classes)
        confidence = np.full(num_classes, np.nan)
        confidence[present] = sums[present] / np.bincount(labels, minlength=num_classes)[present]
        confidence[~present] = confidence[present].mean()
        confidence.setflags(write=False)
        return confidence

    return cached(key, compute)  # type: ignore[return-value]
