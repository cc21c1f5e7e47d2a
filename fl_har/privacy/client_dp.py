"""DP-SGD as one federated client runs it, round after round: its mechanism, noise and ledger.

The Flower ClientApp is stateless across rounds (and a resumed run or a sweep starts new
processes), so a client's privacy ledger is not carried in memory: it is *derived*. Every
hyper-parameter of a client's round is public and fixed for the run (the noise multiplier
sigma, the sample rate ``q = B / n`` with n the client's windows, S steps per round), and which
rounds a client takes part in is a pure function of the run seed (:func:`fl_har.federation.cohort_positions`, the
same draw the server makes). So after run round r the client's ledger holds one
:class:`~fl_har.privacy.MechanismRecord` ``(sigma, q, S)`` per round ``<= r`` in which it was
addressed, and its epsilon is their composition. A round in which the client was addressed but
failed still counts (an upper bound: it may have trained and sent before failing).

``dp_epsilon`` (a target) is turned into sigma per client with
:func:`~fl_har.privacy.noise_multiplier_for_epsilon` over the client's *planned* steps: S times the
rounds of ``run.rounds`` it will be addressed in, so its epsilon after the last round is the target
(within the search tolerance). Growing ``run.rounds`` on resume changes that plan, hence sigma: the
earlier rounds' records are then recomputed with the new sigma, which they did not use; keep
``run.rounds`` fixed for target-epsilon runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from fl_har.config import ConfigError, ExperimentConfig
from fl_har.federation import FederationPlan, cohort_positions, federation_plan, windows_for
from fl_har.privacy.accounting import (
    MechanismRecord,
    PrivacyLedger,
    check_delta,
    noise_multiplier_for_epsilon,
)
from fl_har.privacy.dp_sgd import DPSGDConfig
from fl_har.privacy.errors import PrivacyConfigError


@lru_cache(maxsize=64)
def _participation(seed: int, num: int, size: int, position: int, rounds: int) -> tuple[int, ...]:
    return tuple(r for r in range(1, rounds + 1) if position in cohort_positions(seed, num, size, r))


@dataclass(frozen=True)
class ClientDP:
    """One client's DP-SGD plan for a run: its :class:`DPSGDConfig`, record and schedule.

    Parameters
    ----------
    dp:
        The DP-SGD hyper-parameters of every round of this client (sigma resolved).
    record:
        One round's mechanism: ``(sigma, q = B / n, S)``.
    rounds:
        The run rounds in which this client is addressed (its whole planned participation).
    client_windows:
        n, the client's windows (the population the sample rate and delta refer to).
    """

    dp: DPSGDConfig
    record: MechanismRecord
    rounds: tuple[int, ...]
    client_windows: int

    def ledger(self, run_round: int) -> PrivacyLedger:
        """The mechanisms this client has run after ``run_round`` (its addressed rounds so far)."""
        ledger = PrivacyLedger()
        for _ in (r for r in self.rounds if r <= run_round):
            ledger = ledger.add(self.record)
        return ledger

    def epsilon(self, run_round: int) -> float:
        """Cumulative epsilon at ``dp.delta`` after ``run_round`` (``inf`` when sigma = 0)."""
        return self.ledger(run_round).epsilon(self.dp.delta, self.dp.accountant)


def client_dp(
    config: ExperimentConfig,
    *,
    client_windows: int,
    steps: int,
    position: int,
    num_participants: int,
) -> ClientDP:
    """The DP-SGD plan of the client at ``position`` (partition order) among ``num_participants``.

    ``steps`` is S, the client's local steps per round; ``client_windows`` its n. Raises
    :class:`~fl_har.config.ConfigError` naming the key for a delta that is not below 1 / n, a step
    batch larger than the client's data, or an unreachable target epsilon.
    """
    client, run = config.client, config.run
    if client.local_epochs:  # fixed sampling over E passes: one step per mini-batch
        batch_size, step_batch = steps * client.batch_size, client.batch_size
    else:
        batch_size, step_batch = client.batch_size, client.batch_size // client.local_steps
    try:
        check_delta(client.dp_delta, client_windows)
    except PrivacyConfigError as exc:
        raise ConfigError(
            f"client.dp_delta: {exc} (a client with {client_windows} windows)"
        ) from None
    if step_batch > client_windows:
        raise ConfigError(
            f"client.batch_size: a DP-SGD step of {step_batch} windows exceeds a client's "
            f"{client_windows} windows (sample rate > 1)"
        )
    rate = step_batch / client_windows
    size = run.cohort_size(num_participants)
    rounds = _participation(run.seed, num_participants, size, position, run.rounds)
    sigma = client.dp_noise_multiplier
    if client.dp_epsilon > 0:
        if not rounds:
            raise ConfigError(f"client.dp_epsilon: participant {position} is never addressed")
        try:
            sigma = noise_multiplier_for_epsilon(
                client.dp_epsilon, client.dp_delta, rate, steps * len(rounds),
                accountant=client.dp_accountant, client_windows=client_windows,
            )
        except PrivacyConfigError as exc:
            raise ConfigError(f"client.dp_epsilon: {exc}") from None
    dp = DPSGDConfig(
        lr=client.lr,
        batch_size=batch_size,
        clip=client.dp_clip,
        noise_multiplier=float(sigma),
        local_steps=steps,
        delta=client.dp_delta,
        sampling=client.dp_sampling,
        accountant=client.dp_accountant,
        train_mode=client.train_mode,
    )
    return ClientDP(dp, MechanismRecord(float(sigma), rate, steps), rounds, int(client_windows))


def participant_position(clients: tuple[int, ...], subjects: tuple[int, ...], subject: int) -> int:
    """Where ``subject`` stands among the clients in partition (dataset subject) order."""
    ordered = sorted(clients, key=subjects.index)
    return ordered.index(subject)


def steps_per_round(config: ExperimentConfig, client_windows: int) -> int:
    """S: local steps of the client's every round (with local epochs, one per mini-batch)."""
    client = config.client
    if client.local_epochs:
        usable = client_windows - client_windows % client.batch_size
        return client.local_epochs * (usable // client.batch_size)
    return client.local_steps


def check_client_privacy(
    config: ExperimentConfig, plan: FederationPlan | None = None
) -> dict[int, ClientDP]:
    """Every client's DP-SGD plan by subject (empty unless ``client.privacy = "dp_sgd"``).

    Run before the simulation starts, so a delta that is not below 1 / (a client's windows), a step
    batch larger than a client's data, or an unreachable ``dp_epsilon`` is a
    :class:`~fl_har.config.ConfigError` naming the key, not a failed client in round 1.
    """
    if config.client.privacy != "dp_sgd":
        return {}
    plan = plan if plan is not None else federation_plan(config)
    plans = {}
    for subject in plan.clients:
        n = len(windows_for(config, subject).y)
        try:
            plans[subject] = client_dp(
                config,
                client_windows=n,
                steps=steps_per_round(config, n),
                position=participant_position(plan.clients, plan.subjects, subject),
                num_participants=len(plan.clients),
            )
        except ConfigError as exc:
            raise ConfigError(f"subject {subject}: {exc}") from None
    return plans


__all__ = [
    "ClientDP",
    "check_client_privacy",
    "client_dp",
    "participant_position",
    "steps_per_round",
]
