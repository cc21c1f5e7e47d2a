"""The label-histogram poisoning detector: the score on hand-made histograms, its history, the
detector metrics (TPR, FPR, AUROC by hand), its config keys, the exclusion wrapper around Flower
strategies on hand-made updates, and one small in-process run (no Ray)."""

import math

import numpy as np
import pandas as pd
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord
from flwr.serverapp.strategy import FedAvg

from attacks.label_histogram import LabelHistogramDetector, label_histogram_scores
from fl_har.config import ConfigError, load_config
from fl_har.metrics import MetricInputError, detection_rates, detection_rates_by_round
from strategies.detection import (
    FLAGGED_COLUMN,
    SCORE_COLUMN,
    LabelHistogramDefence,
    rebuild_histories,
    wrap_detector,
)
from strategies.robust import EXCLUDED, SELECTED
from strategies.robust.recording import RecordingFedMedian

SAMPLING = {"fraction_train": 1.0, "fraction_evaluate": 0.0, "min_train_nodes": 1,
            "min_available_nodes": 1}

# Five classes; honest people share a profile (class 0 the most common), with small differences.
HONEST = [[40, 20, 20, 10, 10], [38, 22, 19, 11, 10], [42, 18, 21, 9, 10], [40, 21, 19, 10, 10],
          [39, 20, 20, 11, 10]]
# The attacker (client 5) relabelled 20 of its 100 windows as class 3, the backdoor target.
ATTACKER_ROUND = [30, 15, 15, 30, 10]
ATTACKER_HONEST = [40, 20, 20, 10, 10]


# ----------------------------------------------------------------------------------------------
# The score
# ----------------------------------------------------------------------------------------------


def test_an_attacker_skewed_to_the_target_is_flagged_and_honest_clients_are_not():
    histories = [[h, h] for h in HONEST] + [[ATTACKER_HONEST, ATTACKER_HONEST]]
    scores = label_histogram_scores([*HONEST, ATTACKER_ROUND], histories)
    attacker = scores[-1]
    # shares 0.30 on class 3 against 0.10 in its history and a median of 0.10 among the others
    assert attacker.suspect_class == 3
    assert attacker.history_excess == pytest.approx(0.2)
    assert attacker.population_excess == pytest.approx(0.2)
    assert attacker.score == pytest.approx(0.2)
    assert all(s.score < 0.05 for s in scores[:-1])
    detector = LabelHistogramDetector(threshold=0.1)
    for client, history in enumerate(histories):
        for counts in history:
            detector.remember(client, counts)
    flags = detector.score_round(dict(enumerate([*HONEST, ATTACKER_ROUND])))
    assert [flags[c].flagged for c in range(6)] == [False] * 5 + [True]


def test_the_score_combines_history_and_leave_one_out_population_median_by_hand():
    counts = [[6, 4], [5, 5], [2, 8]]                     # shares of class 1: 0.4, 0.5, 0.8
    histories = [[[8, 2], [6, 4]], [], [[5, 5]]]          # class-1 history means 0.3, -, 0.5
    scores = label_histogram_scores(counts, histories, history_weight=0.25)
    # client 0: history 0.7 / 0.3, population median(0.5, 0.2) = 0.35 / median(0.5, 0.8) = 0.65
    #   d = 0.25 * (p - h) + 0.75 * (p - m): class 0 0.25*(-0.1) + 0.75*0.25 = 0.1625,
    #   class 1 0.25*0.1 + 0.75*(-0.25) = -0.1625 -> suspect class 0
    assert scores[0].suspect_class == 0 and scores[0].score == pytest.approx(0.1625)
    # client 1: no history -> population only; class 1: 0.5 - median(0.4, 0.8) = -0.1,
    #   class 0: 0.5 - median(0.6, 0.2) = 0.1
    assert math.isnan(scores[1].history_excess)
    assert scores[1].suspect_class == 0 and scores[1].score == pytest.approx(0.1)
    # client 2: class 1: 0.25 * 0.3 + 0.75 * (0.8 - 0.45) = 0.3375
    assert scores[2].suspect_class == 1 and scores[2].score == pytest.approx(0.3375)
    # a suspected target class is scored whatever its sign
    fixed = label_histogram_scores(counts, histories, suspect_class=1, history_weight=0.25)
    assert fixed[0].suspect_class == 1 and fixed[0].score == pytest.approx(-0.1625)


def test_first_round_uses_the_population_alone_and_a_lone_client_without_history_is_unscored():
    first = label_histogram_scores([*HONEST, ATTACKER_ROUND])          # no history for anyone
    assert all(math.isnan(s.history_excess) for s in first)
    assert first[-1].score == pytest.approx(first[-1].population_excess) == pytest.approx(0.2)
    alone = label_histogram_scores([ATTACKER_ROUND])
    assert math.isnan(alone[0].score) and not alone[0].scored
    with_history = label_histogram_scores([ATTACKER_ROUND], [[ATTACKER_HONEST]])
    assert with_history[0].score == pytest.approx(0.2)               # history alone
    detector = LabelHistogramDetector(threshold=0.1)
    assert not detector.score_round({"lone": ATTACKER_ROUND})["lone"].flagged


def test_updates_the_attack_could_not_reconstruct_are_unscored_and_not_in_the_population():
    scores = label_histogram_scores([None, [], [0, 0, 0, 0, 0], HONEST[0], ATTACKER_ROUND])
    assert [s.scored for s in scores] == [False, False, False, True, True]
    # the attacker's population is HONEST[0] alone: class 3 share 0.3 - 0.1
    assert scores[-1].score == pytest.approx(0.2)
    with pytest.raises(ValueError, match="classes"):
        label_histogram_scores([[1, 2, 3], [1, 2]])
    with pytest.raises(ValueError, match=">= 0"):
        label_histogram_scores([[1, -2, 3]])


def test_flagged_rounds_stay_out_of_the_history_so_a_persistent_attacker_stays_flagged():
    detector = LabelHistogramDetector(threshold=0.1)
    honest = dict(enumerate(HONEST))
    detector.score_round({**honest, 5: ATTACKER_HONEST})                 # round 1: all honest
    assert len(detector.history(5)) == 1
    for _ in range(3):                                                   # rounds 2-4: poisoned
        result = detector.score_round({**honest, 5: ATTACKER_ROUND})
        assert result[5].flagged and result[5].score.history_excess == pytest.approx(0.2)
    assert len(detector.history(5)) == 1 and len(detector.history(0)) == 4


def test_where_it_fails_an_attacker_keeping_its_label_distribution_is_not_flagged():
    # e.g. a clean-label backdoor, or poisoned windows relabelled in proportion: no skew to see
    detector = LabelHistogramDetector(threshold=0.1)
    detector.score_round({**dict(enumerate(HONEST)), 5: ATTACKER_HONEST})
    assert not detector.score_round({**dict(enumerate(HONEST)), 5: [41, 19, 20, 10, 10]})[5].flagged


# ----------------------------------------------------------------------------------------------
# Detector metrics
# ----------------------------------------------------------------------------------------------


def test_detection_rates_match_a_hand_computation():
    malicious = [1, 1, 0, 0, 0]
    scores = [0.9, 0.3, 0.5, 0.1, 0.3]
    rates = detection_rates(malicious, scores, np.array(scores) > 0.4)
    assert rates.positives == 2 and rates.negatives == 3
    assert rates.tpr == pytest.approx(1 / 2) and rates.fpr == pytest.approx(1 / 3)
    # pairs (malicious, honest): 0.9 beats 0.5, 0.1, 0.3 (3); 0.3 loses to 0.5, beats 0.1, ties
    # 0.3 (1.5): 4.5 of 6
    assert rates.auroc == pytest.approx(4.5 / 6)


def test_unscored_updates_are_not_flagged_and_rank_lowest():
    rates = detection_rates([1, 0, 0], [float("nan"), 0.2, float("nan")], [False, True, False])
    assert rates.tpr == 0.0 and rates.fpr == pytest.approx(0.5)
    # nan (malicious) ties nan (honest): 0.5, loses to 0.2: 0 -> 0.5 / 2
    assert rates.auroc == pytest.approx(0.25)


def test_detection_rates_per_round_and_rounds_without_attackers():
    by_round = detection_rates_by_round(
        [1, 1, 1, 2, 2], [0, 0, 0, 1, 0], [0.1, 0.0, 0.2, 0.5, 0.05], [0, 0, 1, 1, 0])
    assert list(by_round) == [1, 2]
    assert by_round[1].positives == 0 and math.isnan(by_round[1].tpr)
    assert math.isnan(by_round[1].auroc) and by_round[1].fpr == pytest.approx(1 / 3)
    assert by_round[2].tpr == 1.0 and by_round[2].fpr == 0.0 and by_round[2].auroc == 1.0
    with pytest.raises(MetricInputError, match="equal length"):
        detection_rates([1, 0], [0.5], [True, False])


# ----------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------

SMALL = ["data.dataset=synthetic", "data.synthetic_subjects=5", "data.clients=1-4",
         "run.regime=train", "attacks.names=llg,llbg"]


@pytest.mark.parametrize("overrides, message", [
    (["server.detector=label_histograms"], "server.detector: 'label_histograms' is not one of"),
    (["server.detector=label_histogram", "server.detector_threshold=0"], "in \\(0, 1\\)"),
    (["server.detector=label_histogram", "server.detector_threshold=1.5"], "in \\(0, 1\\)"),
    (["server.detector=label_histogram", "server.detector_attack=ilrg"],
     "'ilrg' is not among attacks.names \\(llg, llbg\\)"),
    (["server.detector_exclude=true"], "server.detector_exclude apply only with"),
    (["server.detector_threshold=0.2"], "server.detector_threshold apply only with"),
    (["server.detector=label_histogram", "server.secure_aggregation=true"],
     "hides the individual updates"),
    (["server.detector=label_histogram", "server.detector_exclude=true",
      "server.dp=central_fixed_server", "server.dp_clip=1"], "central_epsilon would be wrong"),
])
def test_bad_detector_settings_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [*SMALL, *overrides])


def test_the_detector_attack_is_auto_resolved_among_the_run_attacks():
    config = load_config(None, [*SMALL, "server.detector=label_histogram"])
    assert config.server.detector_attack == "auto"
    assert config.server.detector_attack_in(("llg", "llbg")) == "llbg"
    assert config.server.detector_attack_in(("llg", "ebi")) == "llg"
    assert config.server.detector_attack_in(("llbg", "ilrg")) == "ilrg"
    explicit = load_config(None, [*SMALL, "server.detector=label_histogram",
                                  "server.detector_attack=llg", "server.detector_exclude=true",
                                  "server.aggregator=median"])
    defence = wrap_detector(FedAvg(), explicit)
    assert isinstance(defence, LabelHistogramDefence)
    assert defence.attack == "llg" and defence.exclude
    assert wrap_detector(inner := FedAvg(), load_config(None, SMALL)) is inner


# ----------------------------------------------------------------------------------------------
# The wrapper around Flower strategies (hand-made updates, the robust tests' scripted grid)
# ----------------------------------------------------------------------------------------------

UPDATES = [[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 0.0], [5.0, 0.0], [100.0, 100.0]]


def scripted_round(defence):
    """One round on the robust tests' scripted grid: node i returns sent + UPDATES[i]; the
    curious server's reconstructions are handed in by hand (node 5 is the skewed attacker)."""
    from test_robust_aggregation import SENT, scripted_grid

    grid = scripted_grid(UPDATES)
    sent = ArrayRecord({k: Array(v) for k, v in SENT.items()})
    messages = defence.configure_train(1, sent, ConfigRecord({}), grid)
    replies = list(grid.send_and_receive(messages))
    nodes = grid.node_ids
    reconstructions = {node: {"llbg": list(counts), "llg": []}
                       for node, counts in zip(nodes, [*HONEST, ATTACKER_ROUND], strict=True)}
    defence.observe_reconstructions(1, reconstructions)
    arrays, _ = defence.aggregate_train(1, replies)
    decisions = {nodes.index(node): d for node, d in defence.take_decisions(1).items()}
    detections = {nodes.index(node): d for node, d in defence.take_detections(1).items()}
    return arrays["w"].numpy() - SENT["w"], decisions, detections


def test_the_exclusion_wrapper_drops_flagged_updates_from_the_fedavg_aggregate():
    defence = LabelHistogramDefence(FedAvg(**SAMPLING), detector=LabelHistogramDetector(0.1),
                                    attack="llbg", exclude=True)
    update, decisions, detections = scripted_round(defence)
    np.testing.assert_allclose(update, [3.0, 0.0])                      # mean of the honest five
    assert [decisions[i].status for i in range(6)] == [SELECTED] * 5 + [EXCLUDED]
    assert decisions[5].score == pytest.approx(0.2)
    assert [detections[i][FLAGGED_COLUMN] for i in range(6)] == [False] * 5 + [True]
    assert detections[5][SCORE_COLUMN] == pytest.approx(0.2)
    assert defence.take_decisions(1) == {} and defence.take_detections(1) == {}


def test_watching_only_aggregates_everything_and_decides_nothing():
    defence = LabelHistogramDefence(FedAvg(**SAMPLING), detector=LabelHistogramDetector(0.1),
                                    attack="llbg", exclude=False)
    update, decisions, detections = scripted_round(defence)
    np.testing.assert_allclose(update, np.mean(UPDATES, axis=0))
    assert decisions == {} and detections[5][FLAGGED_COLUMN]


def test_around_a_robust_aggregator_kept_updates_carry_the_aggregators_decision():
    defence = LabelHistogramDefence(RecordingFedMedian(**SAMPLING),
                                    detector=LabelHistogramDetector(0.1), attack="llbg",
                                    exclude=True)
    update, decisions, _ = scripted_round(defence)
    np.testing.assert_allclose(update, [3.0, 0.0])                      # median of the five
    assert decisions[5].status == EXCLUDED and decisions[5].score == pytest.approx(0.2)
    # the median's score: distance of the update to the aggregate
    assert [decisions[i].score for i in range(5)] == pytest.approx([2, 1, 0, 1, 2])


def test_every_update_flagged_leaves_the_model_where_it_was():
    defence = LabelHistogramDefence(FedAvg(**SAMPLING), detector=LabelHistogramDetector(0.1),
                                    attack="llbg", exclude=True)
    defence.observe_reconstructions(1, {})
    assert defence.aggregate_train(1, []) == (None, None)


def test_a_resumed_detector_rebuilds_the_histories_without_flagged_rounds():
    defence = LabelHistogramDefence(FedAvg(), detector=LabelHistogramDetector(0.1),
                                    attack="llbg")
    rows = [
        {"round": 2, "partition": 0, "attack": "llbg", "pred_counts": [1, 3]},
        {"round": 1, "partition": 0, "attack": "llbg", "pred_counts": [3, 1]},
        {"round": 1, "partition": 0, "attack": "llg", "pred_counts": [4, 0]},
        {"round": 1, "partition": 1, "attack": "llbg", "pred_counts": [2, 2]},
        {"round": 2, "partition": 1, "attack": "llbg", "pred_counts": []},      # attack failed
        {"round": 1, "partition": 7, "attack": "llbg", "pred_counts": [2, 2]},  # not in roster
    ]
    assert rebuild_histories(defence, rows, [(2, 0)], {0: 100, 1: 101}) == 2
    assert [h.tolist() for h in defence.detector.history(100)] == [[3, 1]]
    assert [h.tolist() for h in defence.detector.history(101)] == [[2, 2]]


# ----------------------------------------------------------------------------------------------
# One small run in-process (synthetic data, LocalGrid): columns, exclusion, joinable truth
# ----------------------------------------------------------------------------------------------


def run_config(mode, rounds=3):
    return load_config(None, [
        "data.dataset=synthetic", "data.synthetic_subjects=6", "data.clients=1-5",
        "data.eval_subjects=6", "run.regime=train", f"run.rounds={rounds}",
        "client.batch_size=20", "client.lr=0.2", "client.local_epochs=1", "attacks.names=llbg",
        "adversary.clients=1", "adversary.target=3", "adversary.poison_rate=0.4",
        "adversary.rounds=2-3", f"adversary.mode={mode}",
        *(["adversary.norm_bound=0.05"] if mode == "constrain" else []),
        "server.detector=label_histogram", "server.detector_exclude=true",
    ])


def run_in_process(config, store):
    from clients.har_client import app as client_app
    from strategies.local_grid import LocalGrid
    from strategies.server_app import run_server

    assert run_server(LocalGrid(client_app, 6, seed=7), config, store) == "finished"
    return pd.read_parquet(store.run_dir / "updates.parquet")


def small_run(run_dir, mode):
    from fl_har.results import RunStore

    config = run_config(mode)
    table = run_in_process(config, RunStore.create(run_dir, config.to_dict(),
                                                   seed=config.run.seed))
    assert len(table) == 3 * 5 and table[SCORE_COLUMN].notna().all()
    return table, table[FLAGGED_COLUMN].astype(bool), table["malicious"].astype(bool)


@pytest.fixture(scope="module")
def poison_run(tmp_path_factory):
    return small_run(tmp_path_factory.mktemp("poison") / "run", "poison")


def test_a_run_records_scores_flags_and_exclusions_next_to_the_malicious_truth(poison_run):
    table, flagged, malicious = poison_run
    # measured on this seed: the attacker (subject 1) scores 0.22 and 0.17 in its two attack
    # rounds, every honest update below 0.07
    assert (flagged == malicious).all() and malicious.sum() == 2
    assert set(table.loc[flagged, "decision"]) == {EXCLUDED}
    assert set(table.loc[~flagged, "decision"]) == {SELECTED}
    rates = detection_rates_by_round(table["round"], malicious, table[SCORE_COLUMN], flagged)
    assert math.isnan(rates[1].tpr) and rates[1].fpr == 0.0
    assert rates[2].tpr == rates[3].tpr == 1.0 and rates[2].auroc == rates[3].auroc == 1.0


def test_where_it_fails_a_norm_constrained_attacker_is_missed(tmp_path):
    """The same attacker projecting its update into an L2 ball of 0.05 (about 1/18 of its raw
    norm): LLBG reads the shrunken gradient as a histogram close to everyone's."""
    table, flagged, malicious = small_run(tmp_path / "run", "constrain")
    assert malicious.sum() == 2 and not flagged[malicious].any()
    # measured: 0.086 and 0.044 (still the highest of their rounds), against 0.22 and 0.17 when
    # it only poisons
    assert table.loc[malicious, SCORE_COLUMN].max() < 0.1


def test_a_resumed_run_scores_as_the_uninterrupted_one(tmp_path, poison_run):
    """Two rounds, then resumed for the third: the detector's history of the attacker (round 1
    only: round 2 was flagged) is rebuilt from the run's tables, so round 3 is scored alike."""
    from fl_har.results import RunStore

    first = run_config("poison", rounds=2)
    run_in_process(first, RunStore.create(tmp_path / "run", first.to_dict(), seed=0))
    config = run_config("poison")
    resumed = run_in_process(config, RunStore.resume(tmp_path / "run", config.to_dict()))
    expected = poison_run[0]
    np.testing.assert_allclose(resumed[SCORE_COLUMN], expected[SCORE_COLUMN])
    assert (resumed[FLAGGED_COLUMN] == expected[FLAGGED_COLUMN]).all()
