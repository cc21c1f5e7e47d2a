"""Label-reconstruction attacks on last-layer updates (pure functions of what a server sees).

Entry point::

    from attacks import AttackContext, LastLayerUpdate, reconstruct_labels
    counts = reconstruct_labels("llbg", LastLayerUpdate(grad_w, grad_b, num_samples=100))

Definitions and identities: ``../shared/reference/attacks.md``. Imports numpy and torch only.
"""

from attacks.calibration import clear_calibration_cache
from attacks.count_identity import counts_from_softmax_mass
from attacks.inputs import AttackContext, AttackError, LastLayerUpdate
from attacks.pseudo_gradient import last_layer_update, pseudo_gradient
from attacks.registry import available, reconstruct_labels, reconstruct_labels_with_diagnostics
from attacks.result import AttackResult

__all__ = [
    "AttackContext",
    "AttackError",
    "AttackResult",
    "LastLayerUpdate",
    "available",
    "clear_calibration_cache",
    "counts_from_softmax_mass",
    "last_layer_update",
    "pseudo_gradient",
    "reconstruct_labels",
    "reconstruct_labels_with_diagnostics",
]
