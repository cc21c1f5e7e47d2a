"""An attack's answer with its diagnostics (what the solver saw, not just the counts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class AttackResult:
    """Predicted counts of one attack plus attack-specific diagnostics.

    Attributes:
        counts: int64 array [C], the predicted number of windows per class (what
            :func:`attacks.reconstruct_labels` returns).
        diagnostics: plain numbers / short lists describing the solve, e.g. iLRG's
            ``condition_number`` of its least-squares system or RLU's residual. Keys are documented
            by each attack; an attack without diagnostics gives an empty dict.
    """

    counts: np.ndarray
    diagnostics: dict[str, Any] = field(default_factory=dict)
