"""``fl-har data``: what a dataset holds, as a newcomer wants to see it first."""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.markup import escape
from rich.table import Table

from fl_har_app.console import console, error_console


def list_datasets() -> int:
    from fl_har.data import available_datasets

    table = Table(title="Datasets", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("description")
    for name, text in available_datasets().items():
        table.add_row(name, text)
    console.print(table)
    return 0


def info(args: argparse.Namespace) -> int:
    from fl_har.data import load_dataset, subject_windows

    options = {}
    if args.name == "hapt":
        options["channels"] = args.channels
    start = time.perf_counter()
    with console.status(f"loading {args.name} ..."):
        dataset = load_dataset(args.name, root=args.root, **options)
    seconds = time.perf_counter() - start
    windows = {
        s: subject_windows(dataset, s, window=args.window, overlap=args.overlap)
        for s in dataset.subjects
    }
    total = dataset.label_counts()
    n_samples = int(total.sum())
    n_recordings = sum(len(r) for r in dataset.recordings.values())
    hours = n_samples / dataset.sampling_rate / 3600
    console.print(
        f"[bold]{dataset.name}[/]: {len(dataset.subjects)} subjects, {n_recordings} recordings, "
        f"{n_samples:,} samples ({hours:.2f} h at {dataset.sampling_rate:g} Hz), "
        f"{dataset.num_classes} classes (0 = null), {dataset.num_channels} channels: "
        f"{', '.join(dataset.channel_names)}  [dim](loaded in {seconds:.2f} s)[/]"
    )

    window_labels = np.concatenate([w.y for w in windows.values()])
    window_counts = np.bincount(window_labels, minlength=dataset.num_classes)
    classes = Table(title="Classes", title_justify="left")
    for name, justify in [("id", "right"), ("class", "left"), ("samples", "right"),
                          ("share", "right"), ("windows", "right"), ("subjects", "right")]:
        classes.add_column(name, justify=justify)
    for c, name in enumerate(dataset.class_names):
        present = sum(1 for w in windows.values() if np.any(w.y == c))
        classes.add_row(
            str(c), name, f"{int(total[c]):,}", f"{100 * total[c] / max(n_samples, 1):.1f} %",
            f"{int(window_counts[c]):,}", f"{present}/{len(windows)}",
        )
    console.print(classes)

    subjects = Table(
        title=f"Subjects (windows of {args.window} samples, {100 * args.overlap:g} % overlap)",
        title_justify="left",
    )
    for name in ("subject", "recordings", "samples", "windows", "NULL share", "classes present"):
        subjects.add_column(name, justify="right")
    for s in dataset.subjects:
        counts = dataset.label_counts(s)
        w = windows[s]
        subjects.add_row(
            str(s), str(len(dataset.recordings[s])), f"{int(counts.sum()):,}", f"{len(w.y):,}",
            f"{100 * counts[0] / max(int(counts.sum()), 1):.1f} %",
            f"{len(np.unique(w.y))}/{dataset.num_classes}",
        )
    console.print(subjects)
    per_subject = [len(w.y) for w in windows.values()]
    console.print(
        f"{len(window_labels):,} windows in all ({min(per_subject):,} to {max(per_subject):,} per "
        f"subject); NULL share: {100 * total[0] / max(n_samples, 1):.1f} % of samples, "
        f"{100 * window_counts[0] / max(len(window_labels), 1):.1f} % of windows."
    )
    return 0


DATA_DESCRIPTION = """\
Inspect the HAR datasets fl-har reads, and check your own data before a run.

  list    the datasets fl-har can load (hapt, wear, wetlab, synthetic, custom)
  info    subjects, classes, windows and NULL share of a dataset
  check   validate a folder in the "custom" layout (bring your own data)

Your own data ("custom"): a folder with one .csv or .parquet file per subject (the subject id is
the last number in the file name, e.g. sbj_3.csv) and a label map, labels.toml or labels.csv.
Columns: `label` (integer label ids), optional `timestamp` (seconds; gaps split recordings),
optional `recording`, optional `subject`; every other column is a sensor channel. Run it with
`--set data.dataset=custom --set data.root=DIR`. Details: `fl-har data check --help`."""

DATA_EPILOG = """\
examples:
  fl-har data list
  fl-har data info hapt --window 50 --overlap 0.5
  fl-har data check my-data/ --window 100 --overlap 0.5"""

CHECK_DESCRIPTION = """\
Validate a folder in the custom layout and print what it holds: subjects, channels, classes
with sample and window counts, windows per subject at --window/--overlap, gaps in time and
interpolated missing values. Every problem found is listed (naming the file and line or row),
not just the first. Exit status 0 if the folder is valid, 1 if not.

layout:
  DIR/labels.toml       sampling_rate = 50              (optional, Hz)
                        [classes]
                        0 = "null"                      (optional NULL class)
                        1 = "walking"                   (label id = class name)
  (or DIR/labels.csv    with the header id,name and one line per class)
  DIR/sbj_1.csv         header: <channel>,...,label[,timestamp][,recording][,subject]
  DIR/sbj_2.parquet     the same columns in Parquet

rules:
  label       an id of the label map on every row; empty/null = NULL (needs a null class)
  timestamp   seconds, increasing; a step > 1.5 sample periods is a gap (recording split)
  recording   rows of one recording are consecutive; windows never span two recordings
  channels    numbers; runs of at most --max-gap missing values are interpolated, inf is an error
  all files   the same channel names (any order)

An example converter into this layout: experiments/data/convert_example.py."""


def add_check_parser(data_commands: argparse._SubParsersAction) -> None:
    check = data_commands.add_parser(
        "check",
        help="validate your own data folder (dataset \"custom\")",
        description=CHECK_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("root", metavar="DIR", help="the folder to check")
    check.add_argument("--window", type=int, default=50, help="window length in samples (50)")
    check.add_argument("--overlap", type=float, default=0.5, help="window overlap in [0, 1) (0.5)")
    check.add_argument(
        "--max-gap", type=int, default=5, metavar="N",
        help="longest run of missing sensor values to interpolate, in samples (5)",
    )


def check(args: argparse.Namespace) -> int:
    from fl_har.data.custom import check_custom_folder
    from fl_har.data.windowing import sliding_windows, stride_for

    stride = stride_for(args.window, args.overlap)  # DataError (exit 2) for a bad window/overlap
    with console.status(f"checking {args.root} ..."):
        report = check_custom_folder(args.root, max_gap=args.max_gap)
    label_map = report.label_map
    console.print(f"[bold]{report.root}[/]")
    if label_map is not None:
        console.print(
            f"label map {label_map.path.name}: {len(label_map.class_names) - 1} activities"
            f"{' + NULL' if label_map.has_null else ' (no NULL class)'}, "
            f"{label_map.sampling_rate:g} Hz"
        )
    if report.channel_names:
        console.print(
            f"{len(report.channel_names)} channels: {', '.join(report.channel_names)}"
        )
    if report.ignored:
        console.print(f"[dim]ignored (not .csv/.parquet): {', '.join(report.ignored)}[/]")
    if report.files and label_map is not None:
        num_classes = len(label_map.class_names)
        samples = np.zeros(num_classes, dtype=np.int64)
        windows = np.zeros(num_classes, dtype=np.int64)
        subjects = Table(
            title=f"Subjects (windows of {args.window} samples, {100 * args.overlap:g} % overlap)",
            title_justify="left",
        )
        # short headers: the table must fit an 80-column terminal
        for name in ("subject", "file", "rec.", "samples", "windows", "time gaps", "filled",
                     "classes"):
            subjects.add_column(name, justify="left" if name == "file" else "right")
        for file in report.files:
            y = [sliding_windows(r.signals, r.labels, args.window, stride)[1]
                 for r in file.recordings]
            labels = np.concatenate([r.labels for r in file.recordings])
            window_labels = np.concatenate(y) if y else np.empty(0, np.int64)
            samples += np.bincount(labels, minlength=num_classes)
            windows += np.bincount(window_labels, minlength=num_classes)
            interpolated = sum(1 for n in file.notes if "interpolated" in n)
            subjects.add_row(
                str(file.subject), file.path.name, str(len(file.recordings)),
                f"{len(labels):,}", f"{len(window_labels):,}", str(file.time_gaps),
                str(interpolated), f"{len(np.unique(labels))}/{num_classes}",
            )
            if len(window_labels) == 0:
                report.problems.append(
                    f"{file.path}: subject {file.subject} has no window of {args.window} samples "
                    "(every recording is shorter)"
                )
        console.print(subjects)
        classes = Table(title="Classes", title_justify="left")
        for name, justify in [("id", "right"), ("class", "left"), ("samples", "right"),
                              ("windows", "right")]:
            classes.add_column(name, justify=justify)
        for c, name in enumerate(label_map.class_names):
            classes.add_row(str(c), name, f"{int(samples[c]):,}", f"{int(windows[c]):,}")
        console.print(classes)
        notes = [f"{f.path.name}: {n}" for f in report.files for n in f.notes]
        if notes:
            shown = notes[:20]
            console.print("[bold]gaps[/]")
            for note in shown:
                console.print(f"  {escape(note)}")
            if len(notes) > len(shown):
                console.print(f"  ... and {len(notes) - len(shown)} more")
        for c, name in enumerate(label_map.class_names[1:], start=1):
            if samples[c] == 0:
                console.print(f"[yellow]note:[/] class {c} ({escape(name)}) has no samples")
    if report.problems or not report.files:
        console.print(f"[bold red]{len(report.problems)} problem(s):[/]")
        for problem in report.problems:
            error_console.print(f"[red]-[/] {escape(problem)}", soft_wrap=True)
        console.print("[bold red]not valid[/]")
        return 1
    console.print(
        f"[bold green]valid[/]: {len(report.files)} subjects; use it with "
        f"--set data.dataset=custom --set data.root={escape(str(report.root))}"
    )
    return 0
