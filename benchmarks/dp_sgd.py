"""What DP-SGD costs a client: private local updates against the plain one, in one run.

Model: DeepConvLSTM for HAPT's shapes (3 channels, 13 classes, windows of 50); a round of N = 100
windows in S = 1 and S = 5 local steps; one torch thread (as a Flower client actor runs). Each
variant does the same S steps on the same windows (``sampling="fixed"``), C = 1, sigma = 1:

- ``plain``: :func:`fl_har.training.local_update` (no perturbation);
- ``opacus hooks``: :func:`fl_har.privacy.dp_local_update`, Opacus' per-layer grad samplers,
  ``nn.LSTM`` run as ``DPLSTM`` (the default);
- ``opacus functorch``: the same with ``grad_sample_mode="functorch"`` (torch.func per layer);
- ``torch.func vmap``: per-example gradients of the whole model at once,
  ``vmap(grad(functional_call))`` straight through ``nn.LSTM``, then the same clip/noise/step
  (written here; not part of fl_har).

Before timing, the script checks that the Opacus and torch.func paths apply the same update
(noise 0, dropout off) and prints the largest difference. Times are medians over ``--repeats``
calls after one warm-up call (which also fills the accountant's cache); ratios are to ``plain``.
Usage: ``python benchmarks/dp_sgd.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from fl_har.models import build_model
from fl_har.privacy import DPSGDConfig, dp_local_update
from fl_har.training import LocalTrainingConfig, local_update, step_slices

CHANNELS, CLASSES, WINDOW, N = 3, 13, 50, 100
CLIENT_WINDOWS = 1000
LR, CLIP, SIGMA = 0.01, 1.0, 1.0


def torch_func_update(model, x, y, *, steps, clip, sigma, seed, train_mode=True):
    """DP-SGD with per-example gradients from torch.func over the unmodified model."""
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())
    inputs, targets = torch.as_tensor(x), torch.as_tensor(y)

    def example_loss(p, xi, yi):
        logits = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return F.cross_entropy(logits, yi.unsqueeze(0))

    per_example = vmap(grad(example_loss), in_dims=(None, 0, 0), randomness="different")
    noise = torch.Generator().manual_seed(seed)
    model.train(train_mode)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for part in step_slices(len(targets), steps):
            grads = per_example(params, inputs[part], targets[part])
            norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads.values()))
            factors = (clip / (norms + 1e-6)).clamp(max=1.0)
            batch = part.stop - part.start
            for k, g in grads.items():
                total = torch.einsum("i,i...->...", factors, g)
                total += sigma * clip * torch.randn(total.shape, generator=noise)
                params[k] = params[k] - LR * total / batch
    with torch.no_grad():
        for k, p in model.named_parameters():
            p.copy_(params[k])
    return params


def dp_config(steps, mode, noise=SIGMA, train_mode=True):
    return DPSGDConfig(
        lr=LR,
        batch_size=N,
        clip=CLIP,
        noise_multiplier=noise,
        local_steps=steps,
        sampling="fixed",
        train_mode=train_mode,
        grad_sample_mode=mode,
    )


def check_paths_agree(x, y) -> float:
    """Largest |difference| of the weights after one noise-free, dropout-free step."""
    opacus_model = build_model("deepconvlstm", CHANNELS, CLASSES, WINDOW, seed=0)
    func_model = build_model("deepconvlstm", CHANNELS, CLASSES, WINDOW, seed=0)
    update = dp_local_update(
        opacus_model,
        x,
        y,
        dp_config(1, "hooks", noise=0.0, train_mode=False),
        num_classes=CLASSES,
        seed=0,
        client_windows=CLIENT_WINDOWS,
    )
    params = torch_func_update(
        func_model, x, y, steps=1, clip=CLIP, sigma=0.0, seed=0, train_mode=False
    )
    return max(float((update.state_dict[k] - v).abs().max()) for k, v in params.items())


def run_variant(name: str, model, x, y, steps: int) -> None:
    if name == "plain":
        config = LocalTrainingConfig(lr=LR, local_steps=steps)
        local_update(model, x, y, config, num_classes=CLASSES, seed=1)
    elif name == "torch.func vmap":
        torch_func_update(model, x, y, steps=steps, clip=CLIP, sigma=SIGMA, seed=1)
    else:
        mode = "hooks" if name == "opacus hooks" else "functorch"
        config = dp_config(steps, mode)
        dp_local_update(
            model, x, y, config, num_classes=CLASSES, seed=1, client_windows=CLIENT_WINDOWS
        )


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="There is a performance drop")  # vmap over LSTM
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, WINDOW, CHANNELS)).astype(np.float32)
    y = rng.integers(0, CLASSES, N)

    difference = check_paths_agree(x, y)
    print(
        f"model: DeepConvLSTM {CHANNELS} ch / {CLASSES} classes / window {WINDOW}; N={N}; "
        f"torch threads=1; C={CLIP}, sigma={SIGMA}; median of {args.repeats}"
    )
    print(f"opacus hooks vs torch.func vmap, one noise-free step: max |dw| = {difference:.2e}\n")

    print(f"{'S':>2} {'variant':<18} {'seconds':>9} {'vs plain':>9}")
    for steps in (1, 5):
        baseline = None
        for name in ("plain", "opacus hooks", "opacus functorch", "torch.func vmap"):
            # Built outside the timed calls; training the same model further costs the same.
            model = build_model("deepconvlstm", CHANNELS, CLASSES, WINDOW, seed=0)
            seconds = timed(partial(run_variant, name, model, x, y, steps), args.repeats)
            baseline = baseline or seconds
            print(f"{steps:>2} {name:<18} {seconds:>9.3f} {seconds / baseline:>8.1f}x")


if __name__ == "__main__":
    main()
