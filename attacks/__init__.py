"""Label-reconstruction attacks on last-layer updates (pure functions of what a server sees).

Entry point::

    from attacks import AttackContext, LastLayerUpdate, reconstruct_labels
    counts = reconstruct_labels("llbg", LastLayerUpdate(grad_w, grad_b, num_samples=100))

Definitions and identities: ``../shared/reference/attacks.md``. Imports numpy and torch only.
"""

from attacks.calibration import clear_calibration_cache
from attacks.count_identity import counts_from_softmax_mass
from attacks.inputs import AttackContext, AttackError, LastLayerUpdate
from attacks.options import AttackOption
from attacks.pseudo_gradient import last_layer_update, pseudo_gradient
from attacks.registry import (
    BIAS,
    PUBLISHED,
    REFERENCE,
    WEIGHT,
    AttackSpec,
    attack_spec,
    available,
    context_options,
    option_schema,
    reconstruct_labels,
    reconstruct_labels_with_diagnostics,
    resolve_options,
)
from attacks.result import AttackResult

__all__ = [
    "BIAS",
    "PUBLISHED",
    "REFERENCE",
    "WEIGHT",
    "AttackContext",
    "AttackError",
    "AttackOption",
    "AttackResult",
    "AttackSpec",
    "LastLayerUpdate",
    "attack_spec",
    "available",
    "clear_calibration_cache",
    "context_options",
    "counts_from_softmax_mass",
    "last_layer_update",
    "option_schema",
    "pseudo_gradient",
    "reconstruct_labels",
    "reconstruct_labels_with_diagnostics",
    "resolve_options",
]
