"""The attack registry carries each attack's metadata and option schema."""

import numpy as np
import pytest

import attacks
from attacks import AttackContext, AttackError, AttackOption
from fl_har.report.factors import attack_identity


def test_every_attack_has_complete_metadata():
    for name in attacks.available():
        spec = attacks.attack_spec(name)
        assert spec.family in (attacks.WEIGHT, attacks.BIAS), name
        assert spec.variant in (attacks.PUBLISHED, attacks.REFERENCE), name
        assert spec.paper and spec.description, name
        # a reference reproduction names the published attack it reproduces
        assert spec.base in attacks.available(), name
        if spec.variant == attacks.PUBLISHED:
            assert spec.base == name
        else:
            assert attacks.attack_spec(spec.base).family == spec.family


def test_option_schema_lists_what_each_attack_reads():
    assert set(attacks.option_schema(("llg_star",))) == {"dummy_kind", "calibration_repeats"}
    assert attacks.option_schema(("llg", "ebi")) == {}
    assert "llbg_confidence" in attacks.option_schema()


def test_resolve_options_parses_checks_and_fills_defaults():
    resolved = attacks.resolve_options({"calibration_repeats": "3", "ilrg_force_sum": "false"})
    assert resolved["calibration_repeats"] == 3 and resolved["ilrg_force_sum"] is False
    assert resolved["dummy_kind"] == "normal"
    with pytest.raises(AttackError, match="calibration_repeats: expected a value >= 1, got 0"):
        attacks.resolve_options({"calibration_repeats": 0})
    with pytest.raises(AttackError, match="calibration_repeats: expected int, got 'many'"):
        attacks.resolve_options({"calibration_repeats": "many"})
    with pytest.raises(AttackError, match="llbg_confidence: expected a finite number"):
        attacks.resolve_options({"llbg_confidence": float("nan")})


def test_context_options_reach_the_attack():
    kwargs = attacks.context_options({"llbg_confidence": 0.4})
    context = AttackContext(**kwargs)
    assert context.llbg_confidence == 0.4
    # the config file's "estimate" (a negative value) is the context's None
    assert AttackContext(**attacks.context_options({})).llbg_confidence is None


def test_an_option_outside_the_context_fields_travels_in_options():
    # What a new attack's option does: declared in its own module, read with context.option().
    steps = AttackOption("example_steps", 4, "an example option", lambda v: None if v > 0 else "> 0")
    assert AttackContext().option(steps) == 4
    assert AttackContext(options={"example_steps": "7"}).option(steps) == 7
    with pytest.raises(AttackError, match="example_steps: expected > 0"):
        AttackContext(options={"example_steps": -1}).option(steps)
    hash(AttackContext(options={"a": 1}))  # options never make a context unhashable


def test_report_reads_recorded_metadata_before_the_naming_rule():
    recorded = {"my_attack": {"base": "llbg", "variant": "reference", "family": "bias"}}
    assert attack_identity("my_attack", recorded) == ("llbg", "reference", "bias")
    # runs recorded before the metadata existed: the naming rule
    assert attack_identity("leakage_har.llg", None) == ("llg", "reference", "weight")
    for name in attacks.available():
        spec = attacks.attack_spec(name)
        # the legacy rule and the registry agree on every shipped attack
        assert attack_identity(name) == (spec.base, spec.variant, spec.family), name


def test_counts_unchanged_through_context_options():
    update = attacks.LastLayerUpdate(np.ones((3, 4)), np.array([-0.5, 0.2, 0.3]), num_samples=2)
    counts = attacks.reconstruct_labels("llbg", update, AttackContext(**attacks.context_options({})))
    assert counts.sum() == 2 and counts[0] >= 1
