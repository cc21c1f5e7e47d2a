"""Load time of WEAR/Wetlab-style CSVs: parsing every time vs the content-keyed cache.

Setting of issue 12: every process of every run parsed the per-subject CSVs again. Here: F
generated ``sbj_<i>.csv`` files in the Wetlab layout (3 channels, label names) of S samples each,
loaded three ways: no cache (parse), first cached load (parse + hash + write), later cached load
(hash + read). Target: the later load is a small fraction of the parse.

Run: ``python benchmarks/csv_cache.py [--files F] [--samples S]``. Prints a table; saves nothing
(files and cache live in a temporary folder).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fl_har.data import load_dataset
from fl_har.data.published import WETLAB


def write_files(folder: Path, files: int, samples: int) -> int:
    rng = np.random.default_rng(0)
    names = np.array(["", *WETLAB.activity_names])
    total = 0
    for subject in range(files):
        signals = rng.normal(size=(samples, 3)).astype(np.float32)
        labels = names[np.repeat(rng.integers(0, len(names), size=samples // 500 + 1), 500)]
        lines = [",".join(WETLAB.header)]
        lines += [f"{subject},{x!r},{y!r},{z!r},{lab}"
                  for (x, y, z), lab in zip(signals.astype(float).tolist(), labels[:samples],
                                            strict=True)]
        path = folder / f"sbj_{subject}.csv"
        path.write_text("\n".join(lines) + "\n")
        total += path.stat().st_size
    return total


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--samples", type=int, default=30_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as temp:
        data, cache = Path(temp, "wetlab"), Path(temp, "cache")
        data.mkdir()
        size = write_files(data, args.files, args.samples)
        parse = timed(lambda: load_dataset("wetlab", root=data, cache=False))
        first = timed(lambda: load_dataset("wetlab", root=data, cache_dir=cache))
        later = min(timed(lambda: load_dataset("wetlab", root=data, cache_dir=cache))
                    for _ in range(3))
    print(f"{args.files} files x {args.samples:,} samples ({size / 1e6:.0f} MB of CSV)")
    print(f"{'parse (no cache)':<28}{parse:8.2f} s")
    print(f"{'first load (parse + write)':<28}{first:8.2f} s  ({first / parse:.2f}x parse)")
    print(f"{'cached load':<28}{later:8.2f} s  ({later / parse:.3f}x parse, "
          f"{parse / later:.0f}x faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
