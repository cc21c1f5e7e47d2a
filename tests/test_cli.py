"""The command line as a user meets it: help texts, inspection commands, clear errors."""

from pathlib import Path

import pytest

from fl_har_app import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args", [[], ["data"], ["config"]])
def test_help_explains_itself(capsys, args):
    with pytest.raises(SystemExit) as info:
        main([*args, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: fl-har" in out


def test_run_help_mentions_resume_and_exit_status(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "--resume" in out and "--set" in out and "Exit status" in out


def test_data_info_synthetic(capsys):
    assert main(["data", "info", "synthetic"]) == 0
    out = capsys.readouterr().out
    assert "Classes" in out and "Subjects" in out and "null" in out and "NULL share" in out


def test_attacks_lists_every_paper_attack(capsys):
    assert main(["attacks"]) == 0
    out = capsys.readouterr().out
    for name in ("llg", "llg_star", "ebi", "llbg", "ilrg", "leakage_har.llg"):
        assert name in out


def test_config_show_and_check(tmp_path, capsys):
    assert main(["config", "show"]) == 0
    assert "batch_size = 100" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('[client]\nsampler = "random"\n')
    assert main(["config", "check", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "client.sampler" in err and "shuffle" in err
    assert "Traceback" not in err


def test_unknown_attack_and_unknown_dataset_are_clear_errors(capsys):
    assert main(["config", "check", "--set", "attacks.names=llg,telepathy"]) == 2
    assert "telepathy" in capsys.readouterr().err
    assert main(["data", "info", "mnist"]) == 2
    err = capsys.readouterr().err
    assert "mnist" in err and "hapt" in err


def test_run_refuses_to_overwrite_a_run(tmp_path, capsys):
    (tmp_path / "hapt-default").mkdir()
    (tmp_path / "hapt-default" / "meta.json").write_text("{}")
    args = ["run", "--set", "data.dataset=synthetic", "--out", str(tmp_path)]
    assert main(args) == 2
    assert "hapt-default" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").rglob("*.toml")), ids=str)
def test_shipped_experiment_configs_are_valid(path):
    """Every shipped experiment config and sweep file validates, cell by cell."""
    import tomllib

    import attacks
    from fl_har.config import check_attacks, load_config
    from fl_har.sweep import load_sweep

    if "sweep" in tomllib.loads(path.read_text()):
        configs = [run.config for run in load_sweep(path).runs]
    else:
        configs = [load_config(path)]
    for config in configs:
        check_attacks(config, attacks.available(), attacks.resolve_options)
