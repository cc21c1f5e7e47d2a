"""The aggregation rule the curious server wraps, chosen by the experiment config."""

from __future__ import annotations

from flwr.serverapp.strategy import FedAvg, Strategy

from fl_har.config import ExperimentConfig


def build_aggregator(config: ExperimentConfig) -> Strategy:
    """The Flower strategy that aggregates the replies of each round (FedAvg, McMahan et al.).

    Nodes are chosen by the curious wrapper (it offers the wrapped strategy only this round's
    cohort), so the strategy takes every node it is offered; there is no federated evaluation
    (the server evaluates the global model on held-out subjects itself).
    """
    del config  # one aggregator so far
    return FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=1,
                  min_available_nodes=1)
