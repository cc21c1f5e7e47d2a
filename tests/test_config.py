"""Config files, overrides and validation: bad input is reported with the key and valid choices."""

import pytest

from fl_har.config import (
    ConfigError,
    ExperimentConfig,
    check_attacks,
    from_flat,
    load_config,
    parse_subjects,
    to_flat,
)


def write(tmp_path, text):
    path = tmp_path / "exp.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_papers_main_setting():
    config = load_config()
    assert config.data.dataset == "hapt"
    assert config.model.name == "deepconvlstm" and config.model.init == "untrained"
    assert config.client.batch_size == 100 and config.client.local_steps == 1
    assert config.client.sampler == "shuffle"
    assert config.attacks.names == ("llg", "llg_star", "ebi", "llbg", "ilrg")
    assert config.run.regime == "frozen"


def test_file_and_overrides(tmp_path):
    path = write(tmp_path, '[client]\nbatch_size = 50\nlocal_steps = 5\n[data]\nclients = "1-3,7"\n')
    config = load_config(path, ["client.lr=0.1", "attacks.names=ebi,llbg", "run.regime=train"])
    assert config.client.batch_size == 50 and config.client.step_batch_size == 10
    assert config.client.lr == 0.1
    assert config.data.clients == (1, 2, 3, 7)
    assert config.attacks.names == ("ebi", "llbg")
    assert config.run.regime == "train"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[client]\nbatchsize = 3\n", "unknown key(s) client.batchsize"),
        ("[clients]\nx = 1\n", "unknown section(s) clients"),
        ('[client]\nsampler = "random"\n', "'random' is not one of shuffle, sequential, balanced"),
        ("[client]\nbatch_size = 100\nlocal_steps = 3\n", "must be divisible"),
        ('[client]\nbatch_size = "many"\n', "client.batch_size: expected an integer"),
        ("[data]\noverlap = 1.0\n", "data.overlap must be in [0, 1)"),
        ("[client]\nlr = 0\n", "client.lr must be > 0"),
        ("[data]\nserver_subjects = [1, 2]\neval_subjects = [2]\n", "in both"),
        ("[data]\nclients = [1, 2]\nserver_subjects = [2]\n", "also held by the server"),
        ('[model]\nname = "resnet"\n', "model.name: 'resnet' is not one of"),
        ("[run]\nrounds = 0\n", "run.rounds must be >= 1"),
        ("[client]\nldp_noise = -1.0\n", "must be >= 0"),
        ("not toml ===", "not valid TOML"),
    ],
)
def test_bad_files_name_the_problem(tmp_path, text, message):
    with pytest.raises(ConfigError, match=None) as info:
        load_config(write(tmp_path, text))
    assert message in str(info.value)
    assert "exp.toml" in str(info.value)


def test_missing_file_and_bad_override(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(None, ["batch_size=3"])
    with pytest.raises(ConfigError, match="unknown section 'cleint'"):
        load_config(None, ["cleint.batch_size=3"])


def test_unknown_attack_lists_the_valid_ones():
    config = load_config(None, ["attacks.names=llg,magic"])
    with pytest.raises(ConfigError, match="unknown attack.*magic.*available: llg, ebi"):
        check_attacks(config, ["llg", "ebi"], lambda values: values)


def test_attack_options_come_from_the_registry():
    import attacks

    def check(*overrides):
        config = load_config(None, overrides)
        return check_attacks(config, attacks.available(), attacks.resolve_options)

    resolved = check("attacks.llbg_confidence=0.3").attacks.option_values()
    assert resolved["llbg_confidence"] == 0.3
    # defaults filled in from the registry, so a run's config.toml names every option
    assert set(resolved) == set(attacks.option_schema())
    assert resolved["calibration_repeats"] == attacks.option_schema()["calibration_repeats"].default
    with pytest.raises(ConfigError, match=r"attacks.llbg_confidence: expected a value < 1"):
        check("attacks.llbg_confidence=5")
    with pytest.raises(ConfigError, match="unknown attack option.*llbg_confidance.*known:"):
        check("attacks.llbg_confidance=0.5")
    with pytest.raises(ConfigError, match="dummy_kind: expected one of normal"):
        check("attacks.dummy_kind=uniform")
    with pytest.raises(ConfigError, match="attacks.window: expected a single value"):
        load_config(None, ["attacks.window=[1, 2]"])


def test_attack_options_survive_toml_and_flower_flat_form():
    import attacks

    config = check_attacks(load_config(None, ["attacks.ilrg_force_sum=false"]),
                           attacks.available(), attacks.resolve_options)
    assert from_flat(to_flat(config)) == config
    assert config.to_dict()["attacks"]["ilrg_force_sum"] is False


def test_flat_round_trip_for_flower():
    config = load_config(None, ["data.clients=2-4", "data.server_subjects=[5, 6]"])
    flat = to_flat(config)
    assert all(isinstance(v, (bool, int, float, str)) for v in flat.values())
    assert flat["data.clients"] == "2,3,4"
    flat["server-round"] = 3  # Flower's own keys are ignored
    assert from_flat(flat) == config
    assert from_flat(to_flat(ExperimentConfig())) == ExperimentConfig()


def test_parse_subjects():
    assert parse_subjects("1-3, 5", "x") == (1, 2, 3, 5)
    assert parse_subjects([4, 2], "x") == (4, 2)
    assert parse_subjects(7, "x") == (7,)
    with pytest.raises(ConfigError, match="'a' is not a subject id"):
        parse_subjects("1,a", "data.clients")
