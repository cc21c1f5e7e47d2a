"""Centralised pre-training on synthetic data, class weights, and checkpoint files."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from fl_har.data import fit_normalizer, load_dataset, subject_windows
from fl_har.evaluation import evaluate_model
from fl_har.models import build_model
from fl_har.pretrain import (
    CheckpointError,
    PretrainConfig,
    PretrainError,
    PretrainResult,
    check_compatible,
    class_weights,
    load_checkpoint,
    model_from_checkpoint,
    pretrain,
    save_checkpoint,
)

NUM_CLASSES = 4
NUM_CHANNELS = 3
# DeepConvLSTM at a higher rate than the CLI default so that 2 epochs on ~240 windows learn.
CONFIG = PretrainConfig(epochs=2, lr=3e-3, batch_size=50, seed=0)
SMALL_CONFIG = replace(CONFIG, epochs=1)


@pytest.fixture(scope="module")
def dataset():
    return load_dataset(
        "synthetic",
        num_subjects=3,
        num_classes=NUM_CLASSES,
        num_channels=NUM_CHANNELS,
        samples_per_subject=3000,
        seed=0,
    )


@pytest.fixture(scope="module")
def small_dataset():
    return load_dataset(
        "synthetic",
        num_subjects=3,
        num_classes=NUM_CLASSES,
        num_channels=NUM_CHANNELS,
        samples_per_subject=800,
        seed=1,
    )


@pytest.fixture(scope="module")
def trained(dataset):
    """One 2-epoch run on subjects 1-2, evaluated on subject 3, with its progress calls."""
    calls: list[tuple[int, int, dict]] = []
    result = pretrain(dataset, [1, 2], [3], CONFIG, progress=lambda *a: calls.append(a))
    return result, calls


@pytest.fixture(scope="module")
def small_result(small_dataset) -> PretrainResult:
    return pretrain(small_dataset, [1, 2], [3], SMALL_CONFIG)


# ----------------------------------------------------------------------------- class weights


def test_class_weights_are_balanced_inverse_frequency_with_zero_for_absent() -> None:
    # n = 4 windows, 2 classes present: w_c = 4 / (2 * n_c); class 2 absent -> 0.
    weights = class_weights(np.array([0, 0, 0, 1]), num_classes=3)
    assert weights.dtype == torch.float32
    torch.testing.assert_close(weights, torch.tensor([4 / 6, 4 / 2, 0.0]))


def test_class_weights_of_a_balanced_set_are_one() -> None:
    weights = class_weights(np.array([2, 0, 1, 1, 0, 2]), num_classes=3)
    torch.testing.assert_close(weights, torch.ones(3))


def test_class_weights_equalise_each_present_class_total() -> None:
    labels = np.array([0] * 10 + [1] * 3 + [3] * 2)
    weights = class_weights(labels, num_classes=5).numpy()
    totals = weights * np.bincount(labels, minlength=5)
    np.testing.assert_allclose(totals[[0, 1, 3]], len(labels) / 3, rtol=1e-6)
    assert weights[2] == 0 and weights[4] == 0


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array([0, 3]), r"expected ids in \[0, 2\]"),
        (np.array([], dtype=np.int64), "non-empty"),
        (np.array([0.5, 1.0]), "integer class ids"),
    ],
)
def test_class_weights_reject_bad_labels(labels, message) -> None:
    with pytest.raises(PretrainError, match=message):
        class_weights(labels, num_classes=3)


# ----------------------------------------------------------------------------- training


def test_progress_is_reported_after_every_epoch(trained) -> None:
    result, calls = trained
    assert [(epoch, total) for epoch, total, _ in calls] == [(1, 2), (2, 2)]
    for _, _, metrics in calls:
        assert set(metrics) == {"loss", "eval_accuracy", "eval_macro_f1", "seconds"}
    assert [m["loss"] for m in result.meta["history"]] == [m["loss"] for _, _, m in calls]


def test_loss_decreases_and_beats_the_untrained_model(trained, dataset) -> None:
    result, _ = trained
    losses = [m["loss"] for m in result.meta["history"]]
    assert losses[1] < losses[0]
    held_out = subject_windows(dataset, 3)
    untrained = build_model("deepconvlstm", NUM_CHANNELS, NUM_CLASSES, seed=CONFIG.seed)
    untrained_f1 = evaluate_model(untrained, held_out.x, held_out.y).macro_f1
    assert result.meta["eval_macro_f1"] > untrained_f1 + 0.2
    # The stored number is what the stored weights actually score on the held-out subject.
    rebuilt = evaluate_model(model_from_checkpoint(result), held_out.x, held_out.y, batch_size=50)
    assert rebuilt.macro_f1 == pytest.approx(result.meta["eval_macro_f1"])
    assert rebuilt.accuracy == pytest.approx(result.meta["eval_accuracy"])


def test_meta_describes_model_data_and_run(trained, dataset) -> None:
    meta = trained[0].meta
    assert meta["model"] == "deepconvlstm"
    assert (meta["in_channels"], meta["num_classes"], meta["window"]) == (3, 4, 50)
    assert meta["head_bias"] is True
    assert meta["dataset"] == "synthetic"
    assert meta["class_names"] == list(dataset.class_names)
    assert meta["channel_names"] == list(dataset.channel_names)
    assert (meta["train_subjects"], meta["eval_subjects"]) == ([1, 2], [3])
    assert (meta["epochs"], meta["lr"], meta["seed"]) == (2, 3e-3, 0)
    assert meta["normalization"] == "none"
    assert meta["eval_windows"] == len(subject_windows(dataset, 3))
    assert len(meta["history"]) == 2


def test_same_config_gives_identical_weights_and_leaves_global_rng_alone(trained, dataset) -> None:
    before = torch.get_rng_state()
    again = pretrain(dataset, [1, 2], [3], CONFIG)
    assert torch.equal(torch.get_rng_state(), before)
    first = trained[0].state_dict
    assert first.keys() == again.state_dict.keys()
    for name in first:
        assert torch.equal(first[name], again.state_dict[name]), name


def test_other_seed_or_unweighted_loss_changes_the_weights(small_dataset, small_result) -> None:
    for changed in (replace(SMALL_CONFIG, seed=1), replace(SMALL_CONFIG, class_weighted=False)):
        other = pretrain(small_dataset, [1, 2], [3], changed)
        assert not torch.equal(
            other.state_dict["head.weight"], small_result.state_dict["head.weight"]
        )


@pytest.mark.parametrize("kind", ["standardize", "minmax_batch"])
def test_normalization_is_fitted_on_training_subjects_and_recorded(small_dataset, kind) -> None:
    result = pretrain(small_dataset, [1, 2], [3], replace(SMALL_CONFIG, normalization=kind))
    assert result.meta["normalization"] == kind
    assert 0.0 <= result.meta["eval_macro_f1"] <= 1.0
    if kind == "standardize":
        expected = fit_normalizer("standardize", small_dataset, [1, 2])
        np.testing.assert_allclose(result.meta["normalization_mean"], expected.mean)
        np.testing.assert_allclose(result.meta["normalization_std"], expected.std)
    else:
        assert "normalization_mean" not in result.meta


def test_without_eval_subjects_no_eval_metrics_are_reported(small_dataset) -> None:
    calls = []
    result = pretrain(small_dataset, [1], [], SMALL_CONFIG, progress=lambda *a: calls.append(a))
    assert set(calls[0][2]) == {"loss", "seconds"}
    assert "eval_macro_f1" not in result.meta
    assert result.meta["eval_subjects"] == []


@pytest.mark.parametrize(
    ("train", "held_out", "config", "message"),
    [
        ([], [3], SMALL_CONFIG, "at least one training subject"),
        ([1, 9], [3], SMALL_CONFIG, r"training subject\(s\) \[9\] are not in the dataset"),
        ([1, 2], [2, 3], SMALL_CONFIG, r"subject\(s\) \[2\] are both training and held-out"),
        ([1, 1], [3], SMALL_CONFIG, r"training subject\(s\) \[1\] are listed more than once"),
        ([1], [3], replace(SMALL_CONFIG, epochs=0), "epochs = 0, expected an integer >= 1"),
        ([1], [3], replace(SMALL_CONFIG, lr=-1.0), "lr = -1.0"),
        ([1], [3], replace(SMALL_CONFIG, normalization="zscore"), "normalization = 'zscore'"),
        ([1], [3], replace(SMALL_CONFIG, overlap=1.0), "overlap = 1.0"),
        ([1], [3], replace(SMALL_CONFIG, window=5000), "yield no windows of 5000 samples"),
    ],
)
def test_bad_requests_fail_before_training(small_dataset, train, held_out, config, message):
    with pytest.raises(PretrainError, match=message):
        pretrain(small_dataset, train, held_out, config)


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_loads_with_weights_only(small_result, small_dataset, tmp_path):
    path = tmp_path / "ckpt" / "pretrained.pt"
    save_checkpoint(path, small_result)
    assert [p.name for p in path.parent.iterdir()] == ["pretrained.pt"]  # no temp file left
    raw = torch.load(path, weights_only=True)  # must not need arbitrary unpickling
    assert raw["meta"]["model"] == "deepconvlstm"
    loaded = load_checkpoint(path)
    assert loaded.meta == small_result.meta
    for name, tensor in small_result.state_dict.items():
        assert torch.equal(loaded.state_dict[name], tensor)
    model = model_from_checkpoint(loaded)
    assert not model.training
    x = torch.as_tensor(subject_windows(small_dataset, 3).x)
    reference = build_model("deepconvlstm", NUM_CHANNELS, NUM_CLASSES)
    reference.load_state_dict(small_result.state_dict)
    reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


def test_save_overwrites_and_rejects_unserialisable_meta(small_result, tmp_path) -> None:
    path = tmp_path / "model.pt"
    save_checkpoint(path, small_result)
    changed = PretrainResult(small_result.state_dict, {**small_result.meta, "note": ("a", 1)})
    save_checkpoint(path, changed)
    assert load_checkpoint(path).meta["note"] == ["a", 1]  # tuples are stored as lists
    bad = PretrainResult(small_result.state_dict, {**small_result.meta, "mean": np.zeros(3)})
    with pytest.raises(CheckpointError, match="meta.mean is a ndarray"):
        save_checkpoint(path, bad)
    assert load_checkpoint(path).meta["note"] == ["a", 1]  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


class NotAllowed:
    """A custom class: ``weights_only`` unpickling must refuse it."""


def _write_bytes(path, data: bytes):
    path.write_bytes(data)
    return path


def _torch_save(path, obj):
    torch.save(obj, path)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d, ok: d / "absent.pt", "does not exist"),
        (lambda d, ok: d, "is not a file"),
        (lambda d, ok: _write_bytes(d / "junk.pt", b"not a checkpoint"), "not a readable"),
        (lambda d, ok: _write_bytes(d / "cut.pt", ok.read_bytes()[:200]), "not a readable"),
        (
            lambda d, ok: _torch_save(d / "object.pt", {"x": NotAllowed()}),
            "weights_only loading refuses",
        ),
    ],
    ids=["missing", "directory", "junk", "truncated", "custom-object"],
)
def test_unreadable_checkpoints_name_the_path(small_result, tmp_path, make, message) -> None:
    good = tmp_path / "good.pt"
    save_checkpoint(good, small_result)
    folder = tmp_path / "cases"
    folder.mkdir()
    path = make(folder, good)
    with pytest.raises(CheckpointError, match=message) as error:
        load_checkpoint(path)
    assert str(path) in str(error.value)


def _payload(result: PretrainResult, **changes):
    payload = {"format": "fl-har-pretrain", "version": 1, "state_dict": result.state_dict}
    payload["meta"] = dict(result.meta)
    payload.update(changes)
    return payload


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "something-else"}, "is not an fl-har checkpoint"),
        ({"version": 99}, "format version 99"),
        ({"state_dict": {"head.weight": [1.0]}}, "not a mapping of names to tensors"),
        ({"meta": "oops"}, "'meta' is missing or not a dict"),
        ({"meta": {"model": "deepconvlstm"}}, "meta field 'in_channels'"),
    ],
)
def test_wrong_checkpoint_structure_is_named(small_result, tmp_path, changes, message) -> None:
    path = tmp_path / "other.pt"
    torch.save(_payload(small_result, **changes), path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_plain_state_dict_file_is_not_an_fl_har_checkpoint(small_result, tmp_path) -> None:
    path = tmp_path / "state.pt"
    torch.save(small_result.state_dict, path)
    with pytest.raises(CheckpointError, match="not an fl-har checkpoint"):
        load_checkpoint(path)


def test_model_from_checkpoint_rejects_weights_of_another_shape(small_result) -> None:
    meta = {**small_result.meta, "num_classes": 7}
    with pytest.raises(CheckpointError, match="7 classes"):
        model_from_checkpoint(PretrainResult(small_result.state_dict, meta))


def test_model_from_checkpoint_rejects_an_unknown_architecture(small_result) -> None:
    meta = {**small_result.meta, "model": "resnet"}
    with pytest.raises(CheckpointError, match="no buildable model.*'resnet'"):
        model_from_checkpoint(PretrainResult(small_result.state_dict, meta))


# ----------------------------------------------------------------------------- compatibility

RUN = {"model": "deepconvlstm", "in_channels": 3, "num_classes": 4, "window": 50, "head_bias": True}


def test_compatible_checkpoint_passes(small_result) -> None:
    check_compatible(small_result.meta, **RUN)


def test_each_mismatch_is_named(small_result) -> None:
    run = {**RUN, "num_classes": 19, "head_bias": False, "model": "tinyhar"}
    with pytest.raises(CheckpointError) as error:
        check_compatible(small_result.meta, **run)
    message = str(error.value)
    assert "checkpoint was trained for 4 classes, run has 19 classes" in message
    assert "head_bias" in message and "model" in message
    assert "window" not in message and "in_channels" not in message


def test_missing_meta_field_is_a_mismatch(small_result) -> None:
    meta = {k: v for k, v in small_result.meta.items() if k != "window"}
    with pytest.raises(CheckpointError, match="window: the checkpoint does not record it"):
        check_compatible(meta, **RUN)
