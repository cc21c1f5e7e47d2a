"""Attacks on cohort aggregates and disaggregation across rounds, with known answers."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attacks import AttackContext, AttackError
from attacks.cohort import attack_cohort, cohort_update, secure_sum
from attacks.disaggregation import disaggregate, identifiable_clients

C, D = 5, 8


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, D), nn.Tanh())
        self.head = nn.Linear(D, C)

    def forward(self, x):
        return self.head(self.body(x))


def train_client(model, x, y, steps, lr):
    state = {k: v.clone() for k, v in model.state_dict().items()}
    local = Net()
    local.load_state_dict(state)
    optimizer = torch.optim.SGD(local.parameters(), lr=lr)
    batch = len(y) // steps
    for t in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(local(x[t * batch:(t + 1) * batch]), y[t * batch:(t + 1) * batch]).backward()
        optimizer.step()
    return local.state_dict()


def cohort(seed, sizes, steps, uniform):
    torch.manual_seed(seed)
    model = Net()
    if uniform:  # softmax exactly uniform for every input: the count identity's mass is N / C
        with torch.no_grad():
            model.head.weight.zero_()
            model.head.bias.zero_()
    generator = torch.Generator().manual_seed(seed)
    states, truth = [], np.zeros(C, dtype=np.int64)
    for n in sizes:
        y = torch.randint(0, C, (n,), generator=generator)
        states.append(train_client(model, torch.randn(n, 4, generator=generator), y, steps, 1e-3))
        truth += np.bincount(y.numpy(), minlength=C)
    return model, states, truth


def test_secure_sum_is_the_fedavg_weighted_mean():
    states = [{"w": torch.tensor([1.0, 2.0])}, {"w": torch.tensor([4.0, 8.0])}]
    np.testing.assert_allclose(secure_sum(states, [1, 3])["w"], [3.25, 6.5])
    with pytest.raises(AttackError, match="empty"):
        secure_sum([], [])


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("name", ["llbg", "ilrg"])
def test_attack_on_uniform_cohort_recovers_the_summed_histogram(name, steps):
    """Uniform softmax: each bias attack is exact on one batch, hence on the cohort's aggregate
    (N = all the cohort's windows), which yields the SUM of the clients' histograms."""
    sizes = [10, 6, 14]
    model, states, truth = cohort(0, sizes, steps, uniform=True)
    update = cohort_update(model.state_dict(), states, sizes, lr=1e-3, local_steps=steps)
    assert update.num_samples == 30 and update.local_steps == steps
    # the count identity for the cohort: k = N / C - N grad_b
    np.testing.assert_allclose(30 / C - 30 * update.bias_grad, truth, atol=0.01 * steps)
    counts = attack_cohort(name, model.state_dict(), states, sizes, AttackContext(), lr=1e-3,
                           local_steps=steps)
    np.testing.assert_array_equal(counts, truth)


def test_full_column_rank_and_constant_histograms_recover_every_client_exactly():
    rng = np.random.default_rng(1)
    histograms = rng.integers(0, 30, size=(6, 4))
    participation = np.array([[1, 1, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0], [0, 0, 1, 1, 0, 0],
                              [0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 1, 1], [1, 0, 0, 0, 0, 1],
                              [1, 0, 1, 0, 1, 0]])
    result = disaggregate(participation, participation @ histograms)
    assert result.rank == 6 and result.identifiable.all()
    np.testing.assert_array_equal(result.counts(), histograms)
    np.testing.assert_allclose(result.residual, 0.0, atol=1e-8)


def test_clients_always_together_are_not_identifiable():
    # clients 0 and 1 always participate together: only their sum is determined
    participation = np.array([[1, 1, 0], [1, 1, 1], [0, 0, 1]])
    identifiable, rank = identifiable_clients(participation)
    assert rank == 2
    np.testing.assert_array_equal(identifiable, [False, False, True])
    histograms = np.array([[3, 0], [1, 4], [2, 2]])
    result = disaggregate(participation, participation @ histograms)
    np.testing.assert_allclose(result.estimates[2], [2, 2], atol=1e-8)
    np.testing.assert_allclose(result.estimates[0] + result.estimates[1], [4, 4], atol=1e-8)


def test_disaggregation_rejects_bad_input():
    with pytest.raises(AttackError, match="0/1"):
        disaggregate(np.array([[2, 0]]), np.array([[1, 1]]))
    with pytest.raises(AttackError, match="share R"):
        disaggregate(np.ones((2, 2)), np.ones((3, 2)))
