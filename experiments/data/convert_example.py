"""Example: convert a HAR dataset from another layout into fl-har's ``custom`` layout.

The source here is the common "one long table" layout (as in WISDM and many lab exports): ONE CSV
holding every participant, with columns

    user, activity, timestamp_ms, acc_x, acc_y, acc_z

where ``activity`` is a class *name* (empty = no activity) and ``timestamp_ms`` is milliseconds.
fl-har's ``custom`` layout wants one file per subject with integer label ids, timestamps in
seconds, and a label map (``labels.toml``); see ``fl-har data check --help``.

Adapt :func:`convert` to your own source (other column names, other units, a file per session...).
The output is checked with the same code as ``fl-har data check``.

Run it on generated data (nothing to download)::

    python experiments/data/convert_example.py --demo /tmp/my-har
    fl-har data check /tmp/my-har/custom
    fl-har run --set data.dataset=custom --set data.root=/tmp/my-har/custom --set run.rounds=1

or on your own file: ``python experiments/data/convert_example.py SOURCE.csv OUT_DIR``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

SAMPLING_RATE_HZ = 20.0  # the source's rate; goes into labels.toml
CHANNELS = ("acc_x", "acc_y", "acc_z")
NO_ACTIVITY = ""  # how the source marks unlabelled samples


def write_labels_toml(path: Path, activities: list[str], sampling_rate: float) -> dict[str, int]:
    """labels.toml with id 0 = null and the activities as 1..K (sorted by name, so the ids do not
    depend on the order in which activities first appear). Returns name -> id."""
    ids = {name: index for index, name in enumerate(sorted(activities), start=1)}
    lines = [f"sampling_rate = {sampling_rate:g}", "", "[classes]", '0 = "null"']
    lines += [f"{label_id} = {_toml_string(name)}" for name, label_id in ids.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ids


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def convert(source: Path, out: Path, file_format: str = "csv") -> list[Path]:
    """Split the long table ``source`` into ``out/sbj_<user>.<format>`` plus ``out/labels.toml``."""
    table = pd.read_csv(source, keep_default_na=False, na_values={c: ["", "nan"] for c in CHANNELS})
    missing = [c for c in ("user", "activity", "timestamp_ms", *CHANNELS) if c not in table]
    if missing:
        raise SystemExit(f"{source}: missing columns {missing}")
    out.mkdir(parents=True, exist_ok=True)
    activities = sorted(set(table["activity"].astype(str)) - {NO_ACTIVITY})
    ids = write_labels_toml(out / "labels.toml", activities, SAMPLING_RATE_HZ)
    ids[NO_ACTIVITY] = 0
    written = []
    for user, rows in table.groupby("user", sort=True):
        rows = rows.sort_values("timestamp_ms", kind="stable")
        subject = pd.DataFrame(
            {
                **{c: rows[c].astype("float32") for c in CHANNELS},
                "label": rows["activity"].astype(str).map(ids).astype("int64"),
                "timestamp": rows["timestamp_ms"].to_numpy() / 1000.0,
            }
        )
        target = out / f"sbj_{int(user)}.{file_format}"
        if file_format == "parquet":
            subject.to_parquet(target, index=False)
        else:
            subject.to_csv(target, index=False)
        written.append(target)
    return written


def make_demo_source(path: Path, seed: int = 0) -> None:
    """A small long-table file: 4 users, 2 sessions each (a pause between them), 3 activities and
    unlabelled stretches, a few dropped values."""
    rng = np.random.default_rng(seed)
    activities = ["walking", "jogging", "sitting"]
    frames = []
    for user in (3, 7, 11, 12):
        start_ms = 0.0
        for _session in range(2):
            n = 1200
            labels = np.repeat(rng.choice([NO_ACTIVITY, *activities], size=n // 100), 100)
            level = np.array([{"": 0.0, "walking": 1.0, "jogging": 2.0, "sitting": -1.0}[a]
                              for a in labels])
            signals = level[:, None] + 0.3 * rng.normal(size=(n, 3))
            signals[rng.integers(0, n, size=3), 0] = np.nan  # dropped packets
            frames.append(pd.DataFrame({
                "user": user,
                "activity": labels,
                "timestamp_ms": start_ms + np.arange(n) * 1000.0 / SAMPLING_RATE_HZ,
                **{c: signals[:, i] for i, c in enumerate(CHANNELS)},
            }))
            start_ms += n * 1000.0 / SAMPLING_RATE_HZ + 60_000.0  # one minute's pause
    pd.concat(frames).sample(frac=1.0, random_state=seed).to_csv(path, index=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", help="the long-table CSV to convert")
    parser.add_argument("out", help="output folder (with --demo: the demo's working folder)")
    parser.add_argument("--demo", action="store_true", help="generate a source file and convert it")
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.demo:
        out.mkdir(parents=True, exist_ok=True)
        source = out / "long_table.csv"
        make_demo_source(source)
        out = out / "custom"
    elif args.source is None:
        parser.error("give SOURCE and OUT, or --demo OUT")
    else:
        source = Path(args.source)
    written = convert(source, out, args.format)
    print(f"wrote {len(written)} subject files and labels.toml to {out}")

    from fl_har.data.custom import check_custom_folder

    report = check_custom_folder(out)
    for problem in report.problems:
        print(f"problem: {problem}", file=sys.stderr)
    if not report.valid:
        return 1
    dataset = report.dataset()
    print(
        f"valid: {len(dataset.subjects)} subjects, classes {list(dataset.class_names)}, "
        f"{sum(len(r) for r in dataset.recordings.values())} recordings "
        f"(gaps in time split sessions)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
