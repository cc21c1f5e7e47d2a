"""The aggregation rule the curious server wraps, chosen by the experiment config."""

from __future__ import annotations

from flwr.serverapp.strategy import FedAvg, FedAvgM, Strategy

from fl_har.config import ConfigError, ExperimentConfig, check_aggregator_cohort
from strategies.robust.defences import Flame, FLTrust, NormClipping, RootUpdateFn
from strategies.robust.recording import (
    RecordingBulyan,
    RecordingFedMedian,
    RecordingFedTrimmedAvg,
    RecordingKrum,
    RecordingMultiKrum,
)


def build_aggregator(
    config: ExperimentConfig,
    *,
    num_clients: int | None = None,
    round_offset: int = 0,
    root_update_fn: RootUpdateFn | None = None,
) -> Strategy:
    """The Flower strategy that aggregates the replies of each round (``server.aggregator``).

    ``fedavg``: FedAvg (McMahan et al., AISTATS 2017); with ``server.lr`` != 1, Flower's FedAvgM
    without momentum (Hsu et al. 2019), which moves the global model by ``lr`` times the averaged
    update. The robust rules (see :mod:`strategies.robust`) record a decision per client that the
    curious wrapper writes to the updates table: ``median`` / ``trimmed_mean`` / ``krum`` /
    ``multikrum`` / ``bulyan`` are Flower's own strategies (Multi-Krum averages the ``n - f``
    best-scored updates, as Blanchard et al. suggest); ``clip``, ``flame`` and ``fltrust`` are this
    project's. Nodes are chosen by the curious wrapper (it offers the wrapped strategy only this
    round's cohort), so the strategy takes every node it is offered; there is no federated
    evaluation (the server evaluates the global model on held-out subjects itself).

    Parameters
    ----------
    config : ExperimentConfig
        The validated experiment config.
    num_clients : int, optional
        Participants of the run; the cohort size n for Multi-Krum and the Krum/Bulyan checks
        (required for those aggregators).
    round_offset : int (default: 0)
        Run round = Flower's round + offset (a resumed run), for the aggregation noise stream.
    root_update_fn : callable, optional
        FLTrust's root update (required for ``fltrust``; see
        :func:`strategies.robust.root.server_root_update`).
    """
    sampling = {"fraction_train": 1.0, "fraction_evaluate": 0.0, "min_train_nodes": 1,
                "min_available_nodes": 1}
    server = config.server
    name = server.aggregator
    if name == "fedavg":
        if server.lr != 1.0:
            return FedAvgM(**sampling, server_learning_rate=server.lr, server_momentum=0.0)
        return FedAvg(**sampling)
    if name == "median":
        return RecordingFedMedian(**sampling)
    if name == "trimmed_mean":
        return RecordingFedTrimmedAvg(**sampling, beta=server.trim_beta)
    noise = {"seed": config.run.seed, "round_offset": round_offset}
    if name == "clip":
        return NormClipping(**sampling, **noise, clip_norm=server.clip_norm,
                            noise_multiplier=server.noise_multiplier)
    if name == "flame":
        return Flame(**sampling, **noise, noise_lambda=server.flame_lambda)
    if name == "fltrust":
        if root_update_fn is None:
            raise ConfigError("server.aggregator = \"fltrust\": no root update function "
                              "(the server app builds it from data.server_subjects)")
        return FLTrust(**sampling, **noise, root_update_fn=root_update_fn)
    if num_clients is None:
        raise ValueError(f"server.aggregator = {name!r}: build_aggregator needs num_clients")
    check_aggregator_cohort(config, num_clients, source="server")
    f = server.num_malicious
    if name == "krum":
        return RecordingKrum(**sampling, num_malicious_nodes=f)
    if name == "multikrum":
        n = config.run.cohort_size(num_clients)
        return RecordingMultiKrum(**sampling, num_malicious_nodes=f, num_nodes_to_select=n - f)
    if name == "bulyan":
        return RecordingBulyan(**sampling, num_malicious_nodes=f)
    raise ConfigError(f"server.aggregator: {name!r} has no strategy")
