"""Write the stored expected values that ``tests/test_golden.py`` holds the code to.

Each case is a small federated run through the real ServerApp logic and the real ClientApp,
delivered in-process (``LocalGrid``, no Ray). The files record every attack row and the round
table, so a change anywhere between the data and the results store that moves a number fails
the test. Regenerate only for a deliberate, documented change of numbers:

    python tests/golden/make_golden.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

CASES: dict[str, list[str]] = {
    # The paper's protocol: frozen model, FedSGD, shuffled batches, every attack family.
    "synthetic_frozen": [
        "data.dataset=synthetic", "data.synthetic_subjects=5", "data.clients=1-3",
        "data.server_subjects=4", "data.eval_subjects=5", "client.batch_size=20",
        "run.rounds=2",
        ("attacks.names=llg,llg_plus,llg_star,ebi,llbg,llbg_trained,ilrg,idlg,"
         "leakage_har.llg,leakage_har.ilrg"),
        "attacks.calibration_repeats=2",
    ],
    # Real FedAvg with multi-step updates, local noise and clipping, sequential batches, TinyHAR.
    "synthetic_train": [
        "data.dataset=synthetic", "data.synthetic_subjects=5", "data.clients=1-3",
        "data.server_subjects=4", "data.eval_subjects=5", "data.normalization=standardize",
        "model.name=tinyhar", "client.batch_size=20", "client.local_steps=2",
        "client.sampler=sequential", "client.ldp_clip=1.0", "client.ldp_noise=0.001",
        "run.regime=train", "run.rounds=3", "attacks.names=llg,ebi,llbg,ilrg",
    ],
    # Real data: three HAPT participants, DeepConvLSTM, the paper's five attacks.
    "hapt_frozen": [
        "data.clients=1-3", "run.rounds=2", "client.sampler=balanced",
    ],
}

ATTACK_COLUMNS = ["round", "partition", "subject", "attack", "num_samples", "local_steps",
                  "true_counts", "pred_counts", "error", "ln_acc", "le_acc", "le_recall",
                  "le_precision", "count_acc"]
ROUND_COLUMNS = ["round", "clients_ok", "clients_failed", "train_loss", "eval_accuracy",
                 "eval_macro_f1"]


def run_case(overrides: list[str], out: Path):
    """Run one case in-process; returns (attack table, round table) as plain records."""
    from clients.har_client import app as client_app
    from fl_har.config import load_config
    from fl_har.federation import dataset_for
    from fl_har.results import RunStore
    from strategies.local_grid import LocalGrid
    from strategies.server_app import run_server

    config = load_config(None, overrides)
    store = RunStore.create(out, config.to_dict(), seed=config.run.seed)
    grid = LocalGrid(client_app, len(dataset_for(config).subjects), seed=7)
    status = run_server(grid, config, store)
    assert status == "finished", store.meta
    attacks = store.attack_table()
    rounds = store.round_table()
    return records(attacks, ATTACK_COLUMNS), records(rounds, ROUND_COLUMNS)


def records(frame, columns):
    out = []
    for row in frame[[c for c in columns if c in frame.columns]].to_dict("records"):
        out.append({k: (list(map(int, v)) if hasattr(v, "__len__") and not isinstance(v, str)
                        else (v.item() if hasattr(v, "item") else v)) for k, v in row.items()})
    return out


def main() -> None:
    for name, overrides in CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            attacks, rounds = run_case(overrides, Path(tmp) / name)
        path = HERE / f"{name}.json"
        path.write_text(json.dumps({"overrides": overrides, "attacks": attacks,
                                    "rounds": rounds}, indent=1) + "\n")
        print(f"{path.name}: {len(attacks)} attack rows, {len(rounds)} rounds")


if __name__ == "__main__":
    main()
