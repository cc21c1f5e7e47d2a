"""Same seed, same numbers: small runs held against values stored before a refactor.

``tests/golden/*.json`` were written by ``tests/golden/make_golden.py``. Every attack row
(true and predicted counts, every leakage metric) and every round row (loss, held-out accuracy
and macro-F1) must come out the same. Counts must match exactly; floats to 1e-6 relative, which
absorbs summation-order noise in BLAS but no change of behaviour.
"""

import json
import math
from pathlib import Path

import pytest
from golden.make_golden import CASES, run_case

GOLDEN = Path(__file__).parent / "golden"


def _same(expected, actual, where):
    if isinstance(expected, float) or isinstance(actual, float):
        if expected is None or actual is None:
            assert expected == actual, where
        elif math.isnan(expected):
            assert math.isnan(actual), f"{where}: expected NaN, got {actual}"
        else:
            assert actual == pytest.approx(expected, rel=1e-6, abs=1e-9), where
    else:
        assert actual == expected, f"{where}: expected {expected!r}, got {actual!r}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_run_reproduces_stored_numbers(case, tmp_path):
    stored = json.loads((GOLDEN / f"{case}.json").read_text())
    assert stored["overrides"] == CASES[case], "case definition changed: regenerate on purpose"
    attacks, rounds = run_case(CASES[case], tmp_path / case)
    for name, expected_rows, actual_rows in (
        ("attacks", stored["attacks"], attacks), ("rounds", stored["rounds"], rounds)
    ):
        assert len(actual_rows) == len(expected_rows), f"{case} {name}: row count"
        for i, (expected, actual) in enumerate(zip(expected_rows, actual_rows, strict=True)):
            assert set(actual) == set(expected), f"{case} {name}[{i}]: columns"
            for key in expected:
                _same(expected[key], actual[key], f"{case} {name}[{i}].{key}")
