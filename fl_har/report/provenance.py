"""Where the runs came from: the pre-trained models they attack and the sweeps that ran them.

- Trained runs name their checkpoint in ``model.init``; its meta (written by
  :func:`fl_har.pretrain.pretrain`) holds the held-out macro-F1 and accuracy on the subjects it
  was *not* trained on (in the sweep's leave-subjects-out folds: the fold's own clients), so a
  reader can see the attacked model is really trained.
- A sweep folder holds ``manifest.json`` (written by ``fl-har sweep``) whose ``timing`` entry
  splits the sweep's wall time (pre-training, simulation start-up, runs).

Both are read-only look-ups; a missing or unreadable file is reported, never fatal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from fl_har.report.collect import CollectedRun
from fl_har.report.factors import TRAINED

MANIFEST_FILE = "manifest.json"
PRETRAINED_COLUMNS = (
    "checkpoint", "dataset", "model", "held_out_subjects", "train_subjects", "epochs",
    "eval_macro_f1", "eval_accuracy", "untrained_eval_macro_f1", "pretrain_seconds", "runs",
    "problem",
)


def _checkpoint_row(path: Path, users: list[CollectedRun]) -> dict[str, object]:
    from fl_har.pretrain import CheckpointError, load_checkpoint

    first = users[0].factors
    row: dict[str, object] = {
        "checkpoint": str(path), "dataset": first.dataset, "model": first.model,
        "runs": ";".join(run.name for run in users), "problem": "",
    }
    try:
        meta = load_checkpoint(path).meta
    except CheckpointError as error:
        row["problem"] = str(error)
        return row
    row.update({
        "held_out_subjects": ",".join(map(str, meta.get("eval_subjects", []))),
        "train_subjects": len(meta.get("train_subjects", [])),
        "epochs": meta.get("epochs"),
        "eval_macro_f1": meta.get("eval_macro_f1"),
        "eval_accuracy": meta.get("eval_accuracy"),
        "untrained_eval_macro_f1": meta.get("untrained_eval_macro_f1"),
        "pretrain_seconds": meta.get("pretrain_seconds"),
    })
    return row


def pretrained_models(runs: Sequence[CollectedRun]) -> pd.DataFrame:
    """One row per checkpoint named by a trained run's ``model.init`` (:data:`PRETRAINED_COLUMNS`).

    A relative path is read relative to the current directory (as the run itself did).
    """
    users: dict[str, list[CollectedRun]] = {}
    for run in runs:
        if run.factors.state == TRAINED:
            init = str(run.tables.config.get("model", {}).get("init", ""))
            users.setdefault(init, []).append(run)
    rows = [_checkpoint_row(Path(init), members) for init, members in sorted(users.items())]
    return pd.DataFrame(rows, columns=list(PRETRAINED_COLUMNS))


def sweep_timings(paths: Sequence[str | os.PathLike[str]]) -> list[tuple[Path, dict[str, object]]]:
    """``(manifest path, timing dict)`` of every sweep manifest at or below ``paths``."""
    found: list[tuple[Path, dict[str, object]]] = []
    seen: set[Path] = set()
    for root in map(Path, paths):
        for directory, subdirs, files in os.walk(root):
            subdirs[:] = sorted(d for d in subdirs if d != "cells")  # run folders hold no manifest
            if MANIFEST_FILE not in files:
                continue
            path = Path(directory) / MANIFEST_FILE
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            try:
                manifest = json.loads(path.read_text("utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
                found.append((path, {"problem": f"not readable JSON: {error}"}))
                continue
            timing = manifest.get("timing") if isinstance(manifest, dict) else None
            found.append((path, dict(timing) if isinstance(timing, dict) else {}))
    return found
