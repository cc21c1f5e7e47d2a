"""Client-side privacy: DP-SGD local training (Opacus) and its privacy accounting.

The paper's batch clipping + noise (:mod:`fl_har.ldp`) is a local perturbation without a privacy
guarantee; this package is differential privacy proper: per-example clipping, calibrated Gaussian
noise, and an accountant that reports epsilon per client, per round and cumulatively.

Entry points: :func:`dp_local_update` (mirrors :func:`fl_har.training.local_update`),
:class:`DPSGDConfig`, :func:`epsilon_spent`, :func:`noise_multiplier_for_epsilon`,
:class:`PrivacyLedger`.
"""

from fl_har.privacy.accounting import (
    ACCOUNTANTS,
    MechanismRecord,
    PrivacyLedger,
    check_clip,
    check_delta,
    check_epsilon,
    check_noise_multiplier,
    epsilon_spent,
    noise_multiplier_for_epsilon,
)
from fl_har.privacy.dp_sgd import (
    GRAD_SAMPLE_MODES,
    SAMPLING,
    DPSGDConfig,
    PrivacySpent,
    PrivateLocalUpdate,
    dp_local_update,
    poisson_batches,
)
from fl_har.privacy.errors import PrivacyConfigError, UnsupportedModelError
from fl_har.privacy.opacus_model import private_copy, strip_wrapper_prefix, unsupported_modules

__all__ = [
    "ACCOUNTANTS",
    "GRAD_SAMPLE_MODES",
    "SAMPLING",
    "DPSGDConfig",
    "MechanismRecord",
    "PrivacyConfigError",
    "PrivacyLedger",
    "PrivacySpent",
    "PrivateLocalUpdate",
    "UnsupportedModelError",
    "check_clip",
    "check_delta",
    "check_epsilon",
    "check_noise_multiplier",
    "dp_local_update",
    "epsilon_spent",
    "noise_multiplier_for_epsilon",
    "poisson_batches",
    "private_copy",
    "strip_wrapper_prefix",
    "unsupported_modules",
]
