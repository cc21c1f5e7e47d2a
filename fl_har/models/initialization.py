"""The paper's "untrained" initialisation: Xavier-normal weights, zero biases, from one seed.

Bock et al. (2025, "Label Leakage in Federated Inertial-based Human Activity Recognition",
arXiv:2505.20924) attack models initialised with ``weight_init: xavier_normal``: every
convolution, linear and LSTM weight matrix is drawn from N(0, 2 / (fan_in + fan_out)) (the
variance of Glorot & Bengio's 2010 normalised initialisation, eq. 16, with a normal instead of a
uniform law) and every bias is zero.

Here all draws come from one ``torch.Generator`` seeded with ``seed`` and are taken in module
registration order, so the same architecture and seed always give bit-identical weights, and the
global torch RNG is never read or advanced.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from fl_har.models.errors import ModelConfigError

# Modules whose parameters are exactly one weight (Xavier-normal) and optionally one bias (zero).
_WEIGHT_AND_BIAS_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMALISATIONS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm)

MAX_SEED = 2**64 - 1


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (an integer in [0, 2**64 - 1])."""
    return torch.Generator().manual_seed(validate_seed(seed))


def validate_seed(seed: object) -> int:
    """``seed`` as an int; ``ModelConfigError`` unless it is an integer in [0, 2**64 - 1]."""
    try:
        value = operator.index(seed)  # int or numpy integer, not float/str
    except TypeError:
        value = None
    if isinstance(seed, bool) or value is None or not 0 <= value <= MAX_SEED:
        raise ModelConfigError(f"seed={seed!r} is invalid; expected an integer in [0, 2**64 - 1]")
    return value


@contextmanager
def global_rng_preserved() -> Iterator[None]:
    """Run a block (e.g. PyTorch layer constructors, which draw default weights from the global
    RNG) and then restore the global CPU RNG, so building a model is invisible to other code."""
    with torch.random.fork_rng(devices=[]):
        yield


def init_untrained(model: nn.Module, seed: int) -> None:
    """Re-initialise ``model`` in place as the paper's untrained model.

    - ``Linear`` / ``Conv{1,2,3}d`` weights and LSTM/GRU/RNN ``weight_ih_l*`` / ``weight_hh_l*``
      matrices: Xavier-normal (each matrix on its own fans, as ``nn.init.xavier_normal_`` and the
      paper's ``init_weights`` do).
    - Every bias (including both LSTM bias vectors): zero.
    - Normalisation layers: weight one, bias zero, running statistics reset (no randomness).
    - Modules with other parameters of their own must define ``reset_own_parameters()``, a
      deterministic reset (TinyHAR's attention gate ``gamma`` starts at 0, as in Zhou et al.);
      any other parameter-owning module raises ``TypeError`` so no weight silently keeps a
      default initialisation drawn from the global RNG.
    """
    generator = make_generator(seed)
    with torch.no_grad():
        for module_name, module in model.named_modules():
            if isinstance(module, _NORMALISATIONS):
                module.reset_parameters()  # also resets BatchNorm running statistics
            elif not any(True for _ in module.parameters(recurse=False)):
                continue
            elif isinstance(module, _WEIGHT_AND_BIAS_LAYERS):
                nn.init.xavier_normal_(module.weight, generator=generator)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.RNNBase):
                _init_recurrent(module, generator)
            elif hasattr(module, "reset_own_parameters"):
                module.reset_own_parameters()
            else:
                raise TypeError(
                    f"init_untrained does not know how to initialise module "
                    f"{module_name or '<root>'!r} of type {type(module).__name__}; give it a "
                    f"deterministic reset_own_parameters() method"
                )


def _init_recurrent(module: nn.RNNBase, generator: torch.Generator) -> None:
    for name, parameter in module.named_parameters(recurse=False):
        if name.startswith(("weight_ih", "weight_hh")):
            nn.init.xavier_normal_(parameter, generator=generator)
        elif name.startswith("bias"):
            parameter.zero_()
        else:  # e.g. proj_size projections, which neither model uses
            raise TypeError(f"init_untrained has no rule for recurrent parameter {name!r}")
