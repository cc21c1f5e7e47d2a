"""The message protocol both sides import: what a reply holds, and its errors."""

import numpy as np
import pytest
import torch
from flwr.app import ConfigRecord, RecordDict

import protocol


def reply(**changes):
    fields = {
        "state": {"head.weight": torch.ones(3, 2), "head.bias": torch.zeros(3)},
        "num_examples": 20, "train_loss": 1.5, "train_seconds": 0.25,
        "extra_metrics": {"update-norm": 2.0},
        "truth": protocol.SimulationTruth(np.array([5, 0, 15])),
    }
    fields.update(changes)
    return protocol.TrainReply(**fields)


def test_a_train_reply_round_trips():
    content = protocol.encode_train_reply(reply())
    decoded = protocol.decode_train_reply(content)
    assert decoded.num_examples == 20 and decoded.train_loss == 1.5
    assert decoded.train_seconds == 0.25 and decoded.extra_metrics == {"update-norm": 2.0}
    assert torch.equal(decoded.state["head.weight"], torch.ones(3, 2))
    np.testing.assert_array_equal(decoded.truth.label_counts, [5, 0, 15])


def test_the_truth_travels_on_its_own_channel_and_can_be_taken_out():
    content = protocol.encode_train_reply(reply())
    # one ArrayRecord and one MetricRecord, as Flower's aggregators require
    assert len(content.array_records) == 1 and len(content.metric_records) == 1
    truth = protocol.take_truth(content)
    np.testing.assert_array_equal(truth.label_counts, [5, 0, 15])
    assert protocol.TRUTH_KEY not in content
    assert protocol.take_truth(content) is None
    assert protocol.decode_train_reply(content).truth is None
    # a reply without truth (a real deployment) is a valid reply
    assert protocol.TRUTH_KEY not in protocol.encode_train_reply(reply(truth=None))


def test_extra_metrics_cannot_redefine_the_protocol_keys():
    with pytest.raises(protocol.ProtocolError, match="num-examples"):
        protocol.encode_train_reply(reply(extra_metrics={"num-examples": 3}))


def test_malformed_messages_name_what_is_missing():
    with pytest.raises(protocol.ProtocolError, match="'arrays'"):
        protocol.decode_train_reply(RecordDict({}))
    with pytest.raises(protocol.ProtocolError, match="'identity'"):
        protocol.decode_identity(RecordDict({}))
    with pytest.raises(protocol.ProtocolError, match="server-round"):
        protocol.run_round({})


def test_identity_and_run_round():
    assert protocol.decode_identity(protocol.encode_identity(7)) == 7
    assert protocol.run_round({"server-round": 3}) == 3
    assert protocol.run_round({"server-round": 3, protocol.ROUND_OFFSET_KEY: 5}) == 8
    content = RecordDict({protocol.CONFIG_KEY: ConfigRecord({"a.b": 1})})
    with pytest.raises(protocol.ProtocolError, match="'arrays'"):
        protocol.decode_train_request(content)
