"""Speed of label-histogram disaggregation (attacks.disaggregation): 30 clients x 50 rounds.

Budget: 10 s. Prints the measured time and its ratio to the budget.

    python benchmarks/disaggregation.py
"""

from __future__ import annotations

import time

import numpy as np

from attacks.disaggregation import disaggregate

BUDGET_SECONDS = 10.0


def main() -> None:
    rng = np.random.default_rng(0)
    clients, rounds, classes = 30, 50, 13
    participation = (rng.random((rounds, clients)) < 0.3).astype(float)
    histograms = rng.integers(0, 20, size=(clients, classes)).astype(float)
    cohort = participation @ histograms
    start = time.perf_counter()
    result = disaggregate(participation, cohort)
    seconds = time.perf_counter() - start
    exact = np.array_equal(result.counts()[result.identifiable], histograms[result.identifiable])
    print(f"disaggregation {clients} clients x {rounds} rounds x {classes} classes: "
          f"{seconds * 1000:.1f} ms (rank {result.rank}, "
          f"{int(result.identifiable.sum())} identifiable, exact={exact}); "
          f"ratio to the {BUDGET_SECONDS:.0f} s budget: {seconds / BUDGET_SECONDS:.5f}")


if __name__ == "__main__":
    main()
