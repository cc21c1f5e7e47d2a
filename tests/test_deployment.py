"""Flower's deployment engine: a real SuperLink and SuperNodes on loopback, TLS and insecure.

The same ServerApp and ClientApp as the simulation engine, so the same config and seed must give
exactly the same attack rows (the attack time aside). Slow: every message starts a ClientApp
process that imports torch.
"""

import subprocess

import pandas as pd
import pytest
from test_simulation_ray import SMALL, fl_har

pytestmark = pytest.mark.slow

COMPARED = ["round", "partition", "subject", "attack", "num_samples", "local_steps",
            "true_counts", "pred_counts", "error", "ln_acc", "le_acc"]


def flower_processes():
    out = subprocess.run(["pgrep", "-f", "flower-superlink|flower-supernode|flower-superexec"],
                         capture_output=True, text=True, check=False)
    return set(out.stdout.split())


def attack_rows(run_dir):
    table = pd.read_parquet(run_dir / "attacks.parquet")[COMPARED]
    table["true_counts"] = table["true_counts"].map(list)
    table["pred_counts"] = table["pred_counts"].map(list)
    return table.to_dict("records")


@pytest.mark.parametrize("security", ["tls", "insecure"])
def test_deployment_engine_gives_the_simulation_engines_attack_rows(tmp_path, security):
    before = flower_processes()
    simulated = fl_har("run", *SMALL, "--set", "run.name=sim", "--out", str(tmp_path),
                       cwd=tmp_path)
    assert simulated.returncode == 0, simulated.stdout + simulated.stderr
    deployed = fl_har("deploy", *SMALL, "--set", "run.name=dep", "--out", str(tmp_path),
                      *(["--tls"] if security == "tls" else []), cwd=tmp_path)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    log = (tmp_path / ".deploy-dep" / "superlink.log").read_text()
    assert "SuperLink on 127.0.0.1" in deployed.stdout and "3 SuperNodes started" in deployed.stdout
    if security == "tls":
        assert (tmp_path / ".deploy-dep" / "certificates" / "ca.pem").is_file()
        assert "insecure" not in deployed.stdout.split("SuperLink on")[1].splitlines()[0]
    assert log  # the SuperLink ran and logged
    assert attack_rows(tmp_path / "dep") == attack_rows(tmp_path / "sim")
    # every Flower process the deployment started is gone
    assert flower_processes() <= before
