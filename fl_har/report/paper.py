"""Published numbers of the paper the report compares with.

Source: M. Bock, M. Hopp, K. Van Laerhoven, M. Moeller, "Label Leakage in Federated
Inertial-based Human Activity Recognition", arXiv:2505.20924 (2025), Table 1: "Average ClassAcc
of bias- and weight-based attacks applied to WEAR and Wetlab using shuffled, sequential and
balanced sampling" for untrained (U) and trained (T) models, single-step updates of N = 100
windows, averaged over the attacks of a family and the two architectures (DeepConvLSTM, TinyHAR).
"Avg." is the mean of the weight and bias rows. Values in percent, as printed in the paper.

The printed values are kept verbatim, including one inconsistency: Wetlab (T), shuffle, prints
Avg. 21.66% although (15.72% + 27.87%) / 2 = 21.795%; every other Avg. matches its rows to
within rounding. Which of the three numbers is the typo is unknown.
"""

from __future__ import annotations

import pandas as pd

PAPER_CITATION = (
    "Bock, Hopp, Van Laerhoven & Moeller, \"Label Leakage in Federated Inertial-based Human "
    "Activity Recognition\", arXiv:2505.20924, Table 1"
)
PAPER_DATASETS = ("wear", "wetlab")
PAPER_BATCH_SIZE = 100
FAMILY_AVG = "avg"

# (dataset, state) -> sampler -> (weight, bias, avg) ClassAcc in percent.
_TABLE1: dict[tuple[str, str], dict[str, tuple[float, float, float]]] = {
    ("wear", "untrained"): {
        "shuffle": (7.11, 32.79, 19.95),
        "sequential": (26.79, 98.50, 62.65),
        "balanced": (7.00, 48.93, 27.97),
    },
    ("wear", "trained"): {
        "shuffle": (7.13, 15.51, 11.32),
        "sequential": (39.76, 77.54, 58.65),
        "balanced": (27.66, 54.24, 40.95),
    },
    ("wetlab", "untrained"): {
        "shuffle": (14.64, 28.20, 21.42),
        "sequential": (23.94, 79.00, 51.47),
        "balanced": (12.83, 52.24, 32.53),
    },
    ("wetlab", "trained"): {
        "shuffle": (15.72, 27.87, 21.66),
        "sequential": (28.88, 66.75, 47.82),
        "balanced": (13.09, 44.50, 28.80),
    },
}


def paper_table1() -> pd.DataFrame:
    """The paper's Table 1 as a tidy frame: dataset, state, sampler, family, class_acc (0-1)."""
    rows = [
        {"dataset": dataset, "state": state, "sampler": sampler, "family": family,
         "class_acc": percent / 100.0}
        for (dataset, state), samplers in _TABLE1.items()
        for sampler, values in samplers.items()
        for family, percent in zip(("weight", "bias", FAMILY_AVG), values)
    ]
    return pd.DataFrame(rows)
