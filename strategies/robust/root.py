"""FLTrust's root update: the server's own local training pass on its root data.

Cao et al. (NDSS 2021) give the server a small clean root dataset and have it train on it each
round exactly as a client would, from the same global model. Here the root data are the windows
of ``data.server_subjects`` (normalised as the run's clients normalise theirs), and the pass is
``fl_har.training.local_update`` with the clients' public hyper-parameters: the paper's protocol
(one batch of N windows in S steps, drawn afresh each round) or, with ``client.local_epochs``,
E shuffled passes over all root windows in mini-batches of ``client.batch_size``. No local
privacy noise: the root data are the server's own.
"""

from __future__ import annotations

import numpy as np
import torch

from fl_har.config import ConfigError, ExperimentConfig
from fl_har.federation import FederationPlan, empty_model, normalizer_for, windows_for
from fl_har.seeding import Stream, derive_seed, stream_rng
from fl_har.training import LocalTrainingConfig, local_update
from strategies.robust.arrays import State
from strategies.robust.defences import RootUpdateFn


def root_windows(config: ExperimentConfig) -> tuple[np.ndarray, np.ndarray]:
    """The server subjects' windows (normalised) and labels."""
    subjects = tuple(config.data.server_subjects)
    if not subjects:
        raise ConfigError("FLTrust needs data.server_subjects (the server's root data)")
    parts = [windows_for(config, s) for s in subjects]
    x = np.concatenate([w.x for w in parts])
    y = np.concatenate([w.y for w in parts])
    return normalizer_for(config, subjects)(x), y


def root_batch(config: ExperimentConfig, num_windows: int, run_round: int) -> np.ndarray:
    """Indices of the root windows trained on in ``run_round``, in step order."""
    client = config.client
    if not client.local_epochs:
        rng = stream_rng(config.run.seed, Stream.ROOT_UPDATE, run_round)
        return rng.choice(num_windows, size=client.batch_size,
                          replace=num_windows < client.batch_size)
    usable = num_windows - num_windows % client.batch_size
    if usable == 0:
        raise ConfigError(
            f"FLTrust: the server's {num_windows} root windows are fewer than one mini-batch of "
            f"client.batch_size = {client.batch_size}"
        )
    return np.concatenate([
        stream_rng(config.run.seed, Stream.ROOT_UPDATE, run_round, epoch + 1)
        .permutation(num_windows)[:usable]
        for epoch in range(client.local_epochs)
    ])


def server_root_update(
    config: ExperimentConfig, plan: FederationPlan, *, round_offset: int = 0
) -> RootUpdateFn:
    """FLTrust's root-update function: (Flower round, sent weights) -> weights after the pass.

    Parameters
    ----------
    config : ExperimentConfig
        The run's config (client hyper-parameters, server subjects, seed).
    plan : FederationPlan
        The run's federation plan (channels and classes of the model).
    round_offset : int (default: 0)
        Run round = Flower's round + offset: the batch and dropout of a resumed run's round are
        those of the uninterrupted run.
    """
    x_all, y_all = root_windows(config)
    model = empty_model(config, plan.num_channels, plan.num_classes)
    client = config.client
    weights = None
    if client.loss == "class_weighted":
        from fl_har.pretrain import class_weights

        weights = class_weights(y_all, plan.num_classes)

    def root_update(server_round: int, sent: State) -> State:
        run_round = server_round + round_offset
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in sent.items()})
        index = root_batch(config, len(y_all), run_round)
        steps = (len(index) // client.batch_size if client.local_epochs else client.local_steps)
        update = local_update(
            model, x_all[index], y_all[index],
            LocalTrainingConfig(lr=client.lr, local_steps=steps, train_mode=client.train_mode),
            num_classes=plan.num_classes,
            seed=derive_seed(config.run.seed, Stream.ROOT_UPDATE, run_round, 0),
            class_weights=weights,
        )
        return {k: v.numpy() for k, v in update.state_dict.items()}

    return root_update
