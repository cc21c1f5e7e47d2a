"""``fl-har data``: what a dataset holds, as a newcomer wants to see it first."""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.table import Table

from fl_har_app.console import console


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
