"""The ServerApp: wraps the aggregator in the curious server, evaluates each round, writes results.

``app`` is the ServerApp that ``flwr run .`` starts (its config comes from
``[tool.flwr.app.config]`` in pyproject.toml, dotted keys as in :mod:`fl_har.config`);
``fl-har run`` builds the same thing with :func:`make_server_app` around an already validated
config and run directory.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp

import attacks
import protocol
from attacks.backdoor import AttackerData, Trigger, build_trigger
from fl_har.adversary import AdversaryPlan, attacker_training_data, resolve_adversary
from fl_har.config import ExperimentConfig, check_attacks, from_flat, load_config, to_flat
from fl_har.evaluation import evaluate_model
from fl_har.federation import (
    FederationPlan,
    dataset_for,
    empty_model,
    federation_plan,
    initial_model,
    normalizer_for,
    participant_rows,
    windows_for,
)
from fl_har.results import RunStore
from fl_har.seeding import Stream, derive_seed
from fl_har.stopping import StopSignal
from strategies.aggregators import build_aggregator
from strategies.backdoor import BackdoorProbe
from strategies.central_dp import central_epsilon, wrap_central_dp
from strategies.curious import CuriousStrategy
from strategies.detection import (
    FLAGGED_COLUMN,
    LabelHistogramDefence,
    rebuild_histories,
    wrap_detector,
)
from strategies.leakage import LeakageObserver
from strategies.recorder import RoundRecorder
from strategies.robust.root import server_root_update
from strategies.roster import client_roster, seeded_cohort

logger = logging.getLogger("fl_har")

# Called after every finished round with (round, number of rounds, round summary).
ProgressFn = Callable[[int, int, dict], None]


def _held_windows(config: ExperimentConfig, subjects: tuple[int, ...]):
    """Concatenated, normalised windows of subjects the server holds (or None)."""
    if not subjects:
        return None, None
    parts = [windows_for(config, s) for s in subjects]
    x = np.concatenate([w.x for w in parts])
    y = np.concatenate([w.y for w in parts])
    return normalizer_for(config, subjects)(x), y


def _attack_metadata(name: str) -> dict[str, str]:
    spec = attacks.attack_spec(name)
    return {"family": spec.family, "variant": spec.variant, "base": spec.base, "paper": spec.paper}


def make_context_factory(config: ExperimentConfig, plan: FederationPlan):
    """The attacker's public knowledge in a round: the model it sent, window shape, aux data."""
    aux_x, aux_y = _held_windows(config, plan.server_subjects)
    model = empty_model(config, plan.num_channels, plan.num_classes)
    options = attacks.context_options(config.attacks.option_values())
    options["model_train_mode"] = config.client.train_mode
    # RLU's drift correction: the server set the clients' step size
    options["rlu_lr"] = config.client.lr
    frozen = config.run.regime == "frozen"
    run_token = uuid.uuid4().hex

    def factory(run_round: int, sent_state: dict[str, torch.Tensor]) -> attacks.AttackContext:
        model.load_state_dict(sent_state)
        # Frozen: one model for the whole run; train: a new model every round. Calibrations
        # (LLG+, LLG*, trained LLBG) are cached per (model version, seed), so the attacker's seed
        # is tied to the model version: calibrating once per model is what a real attacker does.
        version = 0 if frozen else run_round
        return attacks.AttackContext(
            model=model,
            input_shape=(config.data.window, plan.num_channels),
            aux_windows=aux_x,
            aux_labels=aux_y,
            seed=derive_seed(config.run.seed, Stream.ATTACK, version),
            # the cache is per process: a token keeps two runs' "version 0" apart
            model_version=(run_token, version),
            **options,
        )

    return factory


def probe_trigger(config: ExperimentConfig, adversary: AdversaryPlan) -> Trigger:
    """The trigger the evaluation probe applies to the held-out windows (measurement only).

    The stamp is fully given by the config. The diffusion trigger is what the first attacker
    trains on its own windows: the probe fits it the same way (same data, seed and options, so
    the content-keyed cache then serves the attacker too) -- the simulation harness reading an
    attacker's data, as it reads the truth channel; no aggregation step sees it.
    """
    if adversary.trigger != "diffusion":
        return build_trigger(adversary.trigger, adversary.trigger_options)
    subject = adversary.subjects[0]
    cache = adversary.trigger_options["cache_dir"]
    logger.warning("fl-har: preparing the diffusion trigger of attacker subject %d (trained once, "
                   "then cached in %s)", subject, cache)
    started = time.perf_counter()
    trigger = build_trigger(adversary.trigger, adversary.trigger_options,
                            AttackerData(**attacker_training_data(config, adversary, subject)))
    logger.warning("fl-har: diffusion trigger ready after %.0f s%s", time.perf_counter() - started,
                   " (from the cache)" if trigger.meta.get("cache_hit") else "")
    return trigger


class RoundWriter:
    """Flower's ``evaluate_fn``: after each aggregated round, evaluate the global model on the
    held-out subjects (in backdoor runs also the attack success rate on the same windows carrying
    the trigger: ``asr``, ``asr_no_null``) and commit the round (attack rows, round row, failures,
    checkpoint) to the results store; then report progress."""

    def __init__(
        self,
        config: ExperimentConfig,
        plan: FederationPlan,
        store: RunStore,
        recorder: RoundRecorder,
        progress: ProgressFn | None = None,
        stop: StopSignal | None = None,
        backdoor: tuple[AdversaryPlan, Trigger] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.stop = stop
        self.recorder = recorder
        self.progress = progress
        self.eval_x, self.eval_y = _held_windows(config, plan.eval_subjects)
        self.eval_model = empty_model(config, plan.num_channels, plan.num_classes)
        # Backdoor runs: ASR on the triggered held-out windows (measurement only).
        self.backdoor_probe = None
        if backdoor is not None and self.eval_x is not None:
            self.backdoor_probe = BackdoorProbe(*backdoor, self.eval_x, self.eval_y,
                                                config.run.seed)
        self.failures = 0
        self._round_start = time.perf_counter()

    def __call__(self, server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if server_round == 0:
            return None
        run_round = self.recorder.run_round(server_round)
        record = self.recorder.take(server_round)
        state = arrays.to_torch_state_dict()
        round_row: dict = {
            "round": run_round,
            "clients_ok": record.num_replies,
            "clients_failed": len(record.failures),
            "train_loss": record.train_loss,
            "train_seconds": record.train_seconds,
            "attack_seconds": record.attack_seconds,
            "aggregate_seconds": record.aggregate_seconds,
        }
        if self.eval_x is not None:
            self.eval_model.load_state_dict(state)
            result = evaluate_model(self.eval_model, self.eval_x, self.eval_y)
            round_row["eval_accuracy"] = result.accuracy
            round_row["eval_macro_f1"] = result.macro_f1
            round_row["eval_macro_f1_no_null"] = result.macro_f1_no_null
            if self.backdoor_probe is not None:
                round_row.update(self.backdoor_probe.measure(self.eval_model))
        if self.config.server.dp != "none":
            round_row["central_epsilon"] = central_epsilon(self.config, run_round)
        round_row["round_seconds"] = time.perf_counter() - self._round_start
        # After a stop request (Ctrl-C) nothing more is committed: the run ends at its last
        # finished round, even if this round saw replies of clients killed by the signal.
        with _committing(self.stop):
            self.store.record_round(run_round, record.attack_rows, round_row, record.failures,
                                    state, update_rows=record.update_rows)
        self.failures += len(record.failures)
        if self.progress is not None:
            self.progress(run_round, self.config.run.rounds, round_row)
        self._round_start = time.perf_counter()
        return MetricRecord({k: float(v) for k, v in round_row.items()})


def run_server(
    grid: Grid,
    config: ExperimentConfig,
    store: RunStore,
    *,
    progress: ProgressFn | None = None,
    failure_injection: str = "",
    stop: StopSignal | None = None,
) -> str:
    """Run (or continue) the federated experiment; returns the final status written to the store.

    ``stop``: set by a signal handler in another thread; rounds are no longer committed once a
    stop is requested (see :mod:`fl_har.stopping`).
    """
    if stop is not None:
        stop.attach(store)
    try:
        config = check_attacks(config, attacks.available(), attacks.resolve_options)
        store.describe_attacks({name: _attack_metadata(name) for name in config.attacks.names})
        dataset = dataset_for(config)
        plan = federation_plan(config, dataset)
        store.describe_participants(participant_rows(config, plan))
        config, plan, roster = client_roster(grid, config, plan)
        adversary = resolve_adversary(config, plan)
        backdoor = None
        if adversary is not None:
            backdoor = (adversary, probe_trigger(config, adversary))
        model = initial_model(config, plan)
        done = store.last_finished_round
        checkpoint = store.load_checkpoint() if done else None
        if checkpoint is not None:
            model.load_state_dict(checkpoint[1])
        remaining = config.run.rounds - done
        if remaining <= 0:
            return _finish(store, config, store.resumed_failures, stop)
        recorder = RoundRecorder(round_offset=done)
        size = config.run.cohort_size(len(roster))
        # Krum-family cohort checks happen here when data.clients = "all" (ConfigError).
        aggregator = build_aggregator(
            config, num_clients=len(roster), round_offset=done,
            root_update_fn=(server_root_update(config, plan, round_offset=done)
                            if config.server.aggregator == "fltrust" else None),
        )
        inner = wrap_detector(wrap_central_dp(aggregator, config, size, recorder.run_round), config)
        if done and isinstance(inner, LabelHistogramDefence):
            _resume_detector(inner, store, roster)
        strategy = CuriousStrategy(
            inner,
            roster=roster,
            observer=LeakageObserver(config, make_context_factory(config, plan)),
            recorder=recorder,
            frozen=config.run.regime == "frozen",
            cohort=(seeded_cohort(roster, size, config.run.seed, recorder.run_round)
                    if size < len(roster) else None),
            secure_aggregation=config.server.secure_aggregation,
            measure_updates=adversary is not None,
        )
        writer = RoundWriter(config, plan, store, recorder, progress, stop, backdoor)
        train_config = ConfigRecord(to_flat(config))
        train_config[protocol.ROUND_OFFSET_KEY] = done
        if failure_injection:
            train_config[protocol.FAILURE_KEY] = failure_injection
        strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(model.state_dict()),
            num_rounds=remaining,
            timeout=config.simulation.timeout,
            train_config=train_config,
            evaluate_fn=writer,
        )
        return _finish(store, config, writer.failures + store.resumed_failures, stop)
    except BaseException as exc:
        if stop is None or not stop.requested:  # a stop request has already closed the store
            store.finish("failed", f"{type(exc).__name__}: {exc}")
        raise


def _resume_detector(defence: LabelHistogramDefence, store: RunStore, roster) -> None:
    """A resumed run's detector starts with the histories of the finished rounds (the
    histograms its attack reconstructed, without the rounds it flagged)."""
    updates = store.update_table()
    flagged = []
    if FLAGGED_COLUMN in updates:
        marked = updates[updates[FLAGGED_COLUMN].eq(True)]
        flagged = list(zip(marked["round"], marked["partition"], strict=True))
    remembered = rebuild_histories(defence, store.attack_table().to_dict("records"), flagged,
                                   {slot.partition: slot.node_id for slot in roster})
    logger.info("fl-har: label_histogram detector resumed with %d earlier histograms",
                remembered)


def _committing(stop: StopSignal | None):
    return stop.commit() if stop is not None else nullcontext()


def _finish(store: RunStore, config: ExperimentConfig, failed: int,
            stop: StopSignal | None = None) -> str:
    """Close the run: failed if any client update failed, unless the config allows it."""
    with _committing(stop):
        if failed and not config.run.allow_client_failures:
            message = (
                f"{failed} client update(s) failed (see failures.csv); set "
                "run.allow_client_failures = true to accept a run with failed clients"
            )
            store.finish("failed", message)
            return "failed"
        store.finish("finished", f"{failed} client failure(s)" if failed else "")
        return "finished"


def make_server_app(
    config: ExperimentConfig,
    store: RunStore,
    *,
    progress: ProgressFn | None = None,
    failure_injection: str = "",
    on_finish: Callable[[str], None] | None = None,
    stop: StopSignal | None = None,
) -> ServerApp:
    """A ServerApp bound to a validated config and an open run directory (``fl-har run``)."""
    server_app = ServerApp()

    @server_app.main()
    def _main(grid: Grid, context: Context) -> None:
        status = run_server(
            grid, config, store, progress=progress, failure_injection=failure_injection,
            stop=stop,
        )
        if on_finish is not None:
            on_finish(status)

    return server_app


# A run of a sweep as the ServerApp needs it: its config, and an open store (created or resumed).
SweepItem = tuple[ExperimentConfig, Callable[[], RunStore]]


def make_sweep_server_app(
    items: list[SweepItem],
    *,
    on_run_start: Callable[[int, ExperimentConfig], None] | None = None,
    on_run_end: Callable[[int, str, str], None] | None = None,
    progress: ProgressFn | None = None,
    stop: StopSignal | None = None,
) -> ServerApp:
    """A ServerApp that runs many experiments one after the other in one simulation.

    Ray, the actors and their imports start once for the whole sweep. A run that fails (a client
    failure, or an error in the run) is recorded in its own run directory and the sweep goes on;
    ``on_run_end(index, status, message)`` reports it.
    """
    server_app = ServerApp()

    @server_app.main()
    def _main(grid: Grid, context: Context) -> None:
        for index, (config, open_store) in enumerate(items):
            if stop is not None and stop.requested:
                return
            if on_run_start is not None:
                on_run_start(index, config)
            message = ""
            try:
                store = open_store()
                status = run_server(grid, config, store, progress=progress, stop=stop)
                message = store.meta.get("message", "")
            except Exception as exc:  # noqa: BLE001 -- one broken cell must not stop the sweep
                status, message = "failed", f"{type(exc).__name__}: {exc}"
                logger.error("run %s failed: %s", config.run.name, message)
            if on_run_end is not None:
                on_run_end(index, status, message)

    return server_app


# Run-config keys (outside fl-har's config sections) through which `fl-har deploy` hands the
# ServerApp a resolved experiment config file and the results folder.
CONFIG_FILE_KEY, RUN_DIR_KEY = "fl-har.config-file", "fl-har.run-dir"
app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Entry point of ``flwr run .``: config from the run config, results under ``run.out``.

    ``fl-har deploy`` passes a resolved config file (``fl-har.config-file``) and the results
    folder (``fl-har.run-dir``) instead.
    """
    config_file = str(context.run_config.get(CONFIG_FILE_KEY, ""))
    if config_file:
        config = load_config(config_file)
    else:
        config = from_flat(context.run_config, source="[tool.flwr.app.config]")
    # One folder per launch: `flwr run .` has no --resume/--overwrite to choose with.
    run_dir = Path(str(context.run_config.get(RUN_DIR_KEY, "")) or
                   Path(config.run.out) / f"{config.run.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    if config.client.privacy == "dp_sgd":  # delta vs windows, reachable epsilon: before round 1
        from fl_har.privacy.client_dp import check_client_privacy

        check_client_privacy(config)
    # `fl-har deploy` checked (or was told to replace) an existing folder before it started.
    store = RunStore.create(run_dir, config.to_dict(), seed=config.run.seed,
                            overwrite=bool(context.run_config.get(RUN_DIR_KEY, "")))
    logger.warning("fl-har: writing results to %s", run_dir.resolve())
    run_server(grid, config, store)
