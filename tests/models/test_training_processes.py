"""Committee training split over worker processes: a member does not depend on which members
train beside it (in-process and across processes), the process count rules, worker errors,
the batched per-member L-BFGS, and the `processes` key in the TOML and the CLI."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
import torch
from ase.calculators.singlepoint import SinglePointCalculator

import alip
from alip.config import ConfigError, loads
from alip.data.oracles import make_oracle
from alip.data.structures import generate_si_pool
from alip.models import training
from alip.models.member_processes import (
    MIN_ATOM_EPOCHS,
    predicted_saving,
    resolve_processes,
    run_groups,
    split_members,
    training_threads,
)
from alip.models.networks import CommitteeNetwork
from alip.models.training import (
    TrainConfig,
    _initialise_scaling,
    _lbfgs,
    _train,
    _train_in_worker,
    featurize,
    member_losses,
    structure_weights,
    train_committee,
)

SMALL = {"small_distortion": {"max_atoms": 16}, "large_distortion": {"max_atoms": 16}, "random": {"n_atoms": (8, 16)}}


@pytest.fixture(scope="module")
def labeled() -> list:
    oracle = make_oracle("sw")
    pool = generate_si_pool(30, seed=4, family_kwargs=SMALL)
    for atoms in pool:
        label = oracle.label(atoms)
        atoms.calc = SinglePointCalculator(atoms, energy=label.energy, forces=label.forces, stress=label.stress)
    return pool


@pytest.fixture(scope="module")
def acsf():
    return alip.ACSF.default_si()


def _config(**kw) -> TrainConfig:
    base = dict(
        n_members=3, hidden=(8,), epochs=8, batch_size=4, lbfgs_steps=6, seed=2, val_fraction=0.2, bootstrap=True
    )
    return TrainConfig(**{**base, **kw})


def _same_members(a: CommitteeNetwork, b: CommitteeNetwork, rtol: float) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=rtol, atol=rtol * float(x.abs().max()), err_msg=name)


def test_member_does_not_depend_on_the_others(labeled, acsf):
    """Member 1 trained alone equals member 1 of the whole committee (Adam, early stopping, L-BFGS)."""
    cfg = _config(dtype="float64", patience=3, lr=3e-2, lr_final=3e-2)
    data = featurize(acsf, labeled, dtype=torch.float64)
    whole = _train(data, acsf, cfg, [0, 1, 2])
    adam = np.array([h["val"] for h in whole.history if isinstance(h["epoch"], int)])
    # early stopping is exercised: a member out of patience holds its best validation loss
    # over the last epochs while another still trains
    stopped = [k for k in range(3) if np.all(adam[-3:, k] == adam[-1, k])]
    assert stopped and len(stopped) < 3
    for k in (stopped[0], next(k for k in range(3) if k not in stopped)):
        alone = _train(data, acsf, cfg, [k])
        _same_members(whole.network.select([k]), alone.network, rtol=1e-9)
        assert alone.best_val == pytest.approx([whole.best_val[k]], rel=1e-9)
    assert whole.history[-1]["epoch"] == "lbfgs"


def test_lbfgs_lowers_each_members_training_loss(labeled, acsf):
    cfg = _config(epochs=2, lbfgs_steps=15, dtype="float64")
    data = featurize(acsf, labeled, dtype=torch.float64)
    before = _train(data, acsf, TrainConfig(**{**cfg.__dict__, "lbfgs_steps": 0}), [0, 1, 2])
    after = _train(data, acsf, cfg, [0, 1, 2])
    train = data.batch(after.train_indices)
    K = cfg.n_members
    # the bootstrap counts of the run (drawn as in _train), its fold removed, weight each member's loss
    rng = np.random.default_rng(cfg.seed)
    rng.permutation(data.n_structures)
    S = train.n_structures
    counts = rng.multinomial(S, np.full(S, 1.0 / S), size=K)
    counts[:, after.val_indices] *= ~after.held_out  # validation folds: a member does not train on its own
    boot = torch.as_tensor(counts, dtype=torch.float64) * structure_weights(train, cfg)
    loss_before = member_losses(before.network, train, boot, cfg, create_graph=False)[0]
    loss_after = member_losses(after.network, train, boot, cfg, create_graph=False)[0]
    val_after = np.array(after.history[-1]["val"])
    kept = val_after < np.array(before.best_val)  # L-BFGS is kept per member where validation improved
    assert kept.any()
    assert torch.all(loss_after[torch.from_numpy(kept)] < 0.9 * loss_before[torch.from_numpy(kept)])


def test_lbfgs_members_search_on_their_own_clocks(labeled, acsf, monkeypatch):
    """40 L-BFGS steps (more than the 20 pairs a member keeps) on three members at once give
    each member's run alone, and a member that backtracks costs the others no evaluation: the
    committee takes as many full passes as its slowest member alone, not the sum of every
    step's slowest line search."""
    cfg = _config(lbfgs_steps=40, dtype="float64")
    data = featurize(acsf, labeled, dtype=torch.float64).padded()
    S, chunks = data.n_structures, len(data.chunks(training.FULL_PASS_CHUNK))
    net = CommitteeNetwork(acsf.n_features, acsf.species, 3, (8,), "silu", seed=5).double()
    _initialise_scaling(net, data, cfg)
    boot = torch.rand(3, S, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) + 0.5
    passes = {"n": 0}
    losses = training.member_losses

    def counted(*args, **kw):
        passes["n"] += 1
        return losses(*args, **kw)

    monkeypatch.setattr(training, "member_losses", counted)
    alone = []
    for k in range(3):
        member = net.select([k])
        passes["n"] = 0
        _lbfgs(member, list(member.parameters()), data, boot[k : k + 1], cfg)
        alone.append((member, passes["n"] // chunks))
    passes["n"] = 0
    together = net.select([0, 1, 2])
    _lbfgs(together, list(together.parameters()), data, boot, cfg)
    for k, (member, _) in enumerate(alone):
        # float64 rounding of products batched over 1 or 3 members, grown over 40 steps (a member
        # whose line search waited for the others' would follow another path)
        _same_members(together.select([k]), member, rtol=1e-7)
    counts = [n for _, n in alone]
    assert passes["n"] // chunks == max(counts)
    assert max(counts) > cfg.lbfgs_steps + 1  # some member backtracked (a pass beyond one per step)


def test_two_processes_give_the_members_of_one(labeled, acsf):
    cfg = _config(processes=1)
    data = featurize(acsf, labeled, dtype=torch.float32)
    one = train_committee(labeled, acsf, cfg, data=data)
    two = train_committee(labeled, acsf, TrainConfig(**{**cfg.__dict__, "processes": 2}), data=data)
    assert (one.processes, two.processes) == (1, 2)
    assert two.committee.metadata["processes"] == 2
    _same_members(one.committee.network, two.committee.network, rtol=1e-4)  # float32 summation order
    np.testing.assert_array_equal(one.train_indices, two.train_indices)
    assert len(one.history) == len(two.history)
    np.testing.assert_allclose(one.history[-1]["val"], two.history[-1]["val"], rtol=1e-4)
    e1 = one.committee.predict(labeled[:5]).energies
    e2 = two.committee.predict(labeled[:5]).energies
    np.testing.assert_allclose(e1, e2, rtol=1e-6)


def test_worker_error_names_the_members(labeled, acsf):
    data = featurize(acsf, labeled[:6], dtype=torch.float32)
    cfg = _config(n_members=2)
    with pytest.raises(RuntimeError, match=r"members \[5\] failed in a worker process:(.|\n)*IndexError"):
        run_groups(_train_in_worker, [[0], [5]], data, acsf, cfg)  # member 5 of a 2-member committee


def test_split_members():
    assert split_members(5, 2) == [[0, 1, 2], [3, 4]]
    assert split_members(5, 3) == [[0, 1], [2, 3], [4]]
    assert split_members(2, 4) == [[0], [1]]
    assert split_members(1, 1) == [[0]]


def test_resolve_processes(monkeypatch):
    monkeypatch.setattr("alip.models.member_processes.usable_cores", lambda: 4)
    big, small_net, wide_net = MIN_ATOM_EPOCHS, 48 * 32 + 32 * 32 + 32, 48 * 128 + 128 * 128 + 128
    assert resolve_processes("auto", 10, 1, big, small_net, cpu=True) == 4  # many members: the networks dominate
    assert resolve_processes("auto", 5, 1, big, wide_net, cpu=True) == 4
    assert resolve_processes("auto", 5, 1, big, small_net, cpu=True) == 1  # the default: the shared work dominates
    assert resolve_processes("auto", 10, 2, big, small_net, cpu=True) == 2  # cores / threads
    assert resolve_processes("auto", 1, 1, big, wide_net, cpu=True) == 1
    assert resolve_processes("auto", 10, 1, big - 1, wide_net, cpu=True) == 1  # start-up would dominate
    assert resolve_processes("auto", 10, 1, big, wide_net, cpu=False) == 1
    assert resolve_processes(3, 2, 1, 0, small_net, cpu=True) == 2  # never more than the members
    assert resolve_processes(2, 5, 1, 0, small_net, cpu=True) == 2  # asked for: no prediction
    with pytest.raises(ValueError, match="GPU"):
        resolve_processes(2, 5, 1, big, small_net, cpu=False)
    monkeypatch.setattr(multiprocessing, "current_process", lambda: type("P", (), {"daemon": True})())
    assert resolve_processes("auto", 10, 1, big, wide_net, cpu=True) == 1


def test_training_threads(monkeypatch):
    """Threads "auto" are the usable cores up to 2 in one process and one per worker; a number stays."""
    for cores, one_process in ((1, 1), (2, 2), (16, 2)):
        monkeypatch.setattr("alip.models.member_processes.usable_cores", lambda c=cores: c)
        assert training_threads("auto", 1) == one_process
        assert training_threads("auto", 3) == 1
        assert training_threads(3, 1) == 3 and training_threads(None, 1) is None
        assert training_threads(3, 2) == 3 and training_threads(None, 2) == 1  # a worker never takes all cores
    monkeypatch.setattr("alip.models.member_processes.usable_cores", lambda: 4)
    assert resolve_processes("auto", 10, "auto", MIN_ATOM_EPOCHS, 48 * 128 + 128 * 128 + 128, cpu=True) == 4


def test_threads_auto_is_the_default_and_bad_threads_are_refused(labeled, acsf, monkeypatch):
    monkeypatch.setattr("alip.models.member_processes.usable_cores", lambda: 2)
    assert TrainConfig().threads == "auto"
    before = torch.get_num_threads()
    res = training.train_committee(labeled[:4], acsf, _config(epochs=1, lbfgs_steps=0, processes=1))
    assert res.threads == 2 and res.committee.metadata["threads"] == 2
    assert torch.get_num_threads() == before  # restored after training
    for bad in (0, -1, "two", 1.5, True):
        with pytest.raises(ValueError, match="threads"):
            TrainConfig(threads=bad)


def test_predicted_saving_follows_the_cost_model():
    ref = 48 * 32 + 32 * 32 + 32
    assert predicted_saving(5, 2, ref) == pytest.approx(2 / (10.4 + 5))  # members 0-2 | 3-4
    assert predicted_saving(5, 5, ref) == pytest.approx(4 / (10.4 + 5))
    assert predicted_saving(1, 2, ref) == 0.0
    assert predicted_saving(5, 2, 4 * ref) > predicted_saving(5, 2, ref)  # wider networks split better


def test_processes_key_in_toml_and_config():
    assert loads("[training]\nprocesses = 2\n").training.processes == 2
    assert loads('[training]\nprocesses = "auto"\n').training.processes == "auto"
    for bad in ('"two"', "0", "true", "1.5"):
        with pytest.raises(ConfigError, match="processes"):
            loads(f"[training]\nprocesses = {bad}\n")
    with pytest.raises(ValueError, match="processes"):
        TrainConfig(processes=0)


def test_select_and_join_round_trip():
    net = CommitteeNetwork(6, [14], 4, (5,), "silu", seed=3)
    with torch.no_grad():
        net.feature_shift.fill_(0.5)
    parts = [net.select([0, 1, 2]), net.select([3])]
    joined = CommitteeNetwork.join(parts)
    _same_members(net, joined, rtol=0)
    with pytest.raises(IndexError, match="out of range"):
        net.select([4])
    other = CommitteeNetwork(6, [14], 1, (5,), "silu", seed=3)  # other feature scaling
    with pytest.raises(ValueError, match="scaling"):
        CommitteeNetwork.join([parts[0], other])
