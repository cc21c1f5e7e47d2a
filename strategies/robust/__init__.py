"""Robust aggregation for the curious server (issue 10, defences against poisoning).

Pure rules on flat update vectors, each returning the aggregate and a decision per client:
:func:`~strategies.robust.flame.flame` (FLAME, Nguyen et al. 2022),
:func:`~strategies.robust.fltrust.fltrust` (FLTrust, Cao et al. 2021),
:func:`~strategies.robust.clipping.norm_clipping` (Sun et al. 2019) and
:func:`~strategies.robust.krum.krum_scores` (Blanchard et al. 2017). Flower strategies around
them (:mod:`strategies.robust.defences`) and Flower's own robust strategies recording their
per-client decisions (:mod:`strategies.robust.recording`).
"""

from strategies.robust.clipping import norm_clipping
from strategies.robust.common import (
    CLIPPED,
    DECISIONS,
    EXCLUDED,
    SELECTED,
    AggregationResult,
    Decision,
)
from strategies.robust.flame import flame
from strategies.robust.fltrust import fltrust
from strategies.robust.krum import krum_scores

__all__ = [
    "CLIPPED", "DECISIONS", "EXCLUDED", "SELECTED", "AggregationResult", "Decision",
    "flame", "fltrust", "krum_scores", "norm_clipping",
]
