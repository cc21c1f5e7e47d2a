"""The aggregation rule the curious server wraps, chosen by the experiment config."""

from __future__ import annotations

from flwr.serverapp.strategy import FedAvg, FedAvgM, Strategy

from fl_har.config import ExperimentConfig


def build_aggregator(config: ExperimentConfig) -> Strategy:
    """The Flower strategy that aggregates the replies of each round.

    FedAvg (McMahan et al., AISTATS 2017); with ``server.lr`` != 1, Flower's FedAvgM without
    momentum (Hsu et al. 2019), which moves the global model by ``lr`` times the averaged update.
    Nodes are chosen by the curious wrapper (it offers the wrapped strategy only this round's
    cohort), so the strategy takes every node it is offered; there is no federated evaluation
    (the server evaluates the global model on held-out subjects itself).
    """
    sampling = {"fraction_train": 1.0, "fraction_evaluate": 0.0, "min_train_nodes": 1,
                "min_available_nodes": 1}
    if config.server.lr != 1.0:
        return FedAvgM(**sampling, server_learning_rate=config.server.lr, server_momentum=0.0)
    return FedAvg(**sampling)
