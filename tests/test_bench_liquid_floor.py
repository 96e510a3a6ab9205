"""bench/liquid_floor.py: mixed committees' errors and the phase subsets of the learning curve."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from bench_scripts import load_bench


@pytest.fixture(scope="module")
def lf():
    return load_bench("liquid_floor")


def _frames(energies_per_atom, n_atoms=2):
    out = []
    for e in energies_per_atom:
        a = Atoms("Si" * n_atoms, positions=np.arange(3 * n_atoms).reshape(-1, 3), cell=[5, 5, 5], pbc=True)
        a.calc = SinglePointCalculator(a, energy=e * n_atoms)
        out.append(a)
    return out


def test_energy_errors_are_per_atom_in_mev(lf):
    frames = _frames([-4.0, -3.5], n_atoms=4)
    err = lf.energy_errors(np.array([-16.0 + 0.004, -14.0 - 0.008]), frames)
    assert err == pytest.approx([1.0, -2.0])


def test_mix_table_cancels_opposite_liquid_errors_and_keeps_shared_ones(lf):
    labels = np.array([-4.6, -4.5, -4.0, -3.9, -3.95, -4.55])
    phases = ["crystal", "crystal", "liquid", "liquid", "liquid", "crystal"]
    frames = _frames(labels)
    pattern = np.array([0.0, 0.0, 3e-3, -5e-3, 2e-3, 0.0])  # eV/atom on the liquid frames
    crystal = np.array([1e-3, -1e-3, 0.0, 0.0, 0.0, 2e-3])
    energies = {
        "a": 2 * (labels + pattern + crystal),
        "b": 2 * (labels - pattern + crystal),  # the opposite liquid errors
        "c": 2 * (labels + 2 * pattern),  # the same pattern, twice as large, exact crystals
    }
    t = lf.mix_table(energies, frames, phases)
    assert t["alone"]["a"]["liquid"] == pytest.approx(1e3 * np.sqrt(np.mean(pattern[2:5] ** 2)))
    assert t["alone"]["c"]["crystal"] == pytest.approx(0.0, abs=1e-9)
    assert t["correlation"]["a ~ b"] == pytest.approx(-1.0)
    assert t["correlation"]["a ~ c"] == pytest.approx(1.0)
    assert t["mean"]["a + b"]["liquid"] == pytest.approx(0.0, abs=1e-9)  # opposite errors cancel
    assert t["mean"]["a + b"]["crystal"] == pytest.approx(t["alone"]["a"]["crystal"])
    assert t["mean"]["a + c"]["liquid"] == pytest.approx(1.5 * t["alone"]["a"]["liquid"])  # shared ones do not
    assert set(t["mean"]) == {"a + b", "a + c", "b + c", "a + b + c"}
    everything = np.sqrt(np.mean((1e3 * (pattern * 2 / 3 + crystal * 2 / 3)) ** 2))
    assert t["mean"]["a + b + c"]["all"] == pytest.approx(everything)


def test_phase_fraction_keeps_the_other_phase_and_draws_a_fraction(lf):
    phases = ["liquid" if i % 3 == 0 else "crystal" for i in range(30)]  # 10 liquid, 20 crystal
    keep = lf.phase_fraction(phases, "liquid", 0.3, seed=0)
    assert list(keep) == sorted(keep)
    liquid = [i for i in keep if phases[i] == "liquid"]
    assert len(liquid) == 3
    assert [i for i in keep if phases[i] == "crystal"] == [i for i in range(30) if phases[i] == "crystal"]
    assert list(lf.phase_fraction(phases, "liquid", 0.3, seed=0)) == list(keep)  # the seed decides
    assert any(list(lf.phase_fraction(phases, "liquid", 0.3, seed=s)) != list(keep) for s in range(1, 5))
    assert len(lf.phase_fraction(phases, "liquid", 1.0, seed=0)) == 30
    with pytest.raises(ValueError, match="fraction"):
        lf.phase_fraction(phases, "liquid", 0.0, seed=0)
    with pytest.raises(ValueError, match="no frame"):
        lf.phase_fraction(["crystal"] * 4, "liquid", 0.5, seed=0)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["mix", "one.pt"], "two or more"),
        (["curve", "--fraction", "0"], "--fraction"),
        (["curve", "--fraction", "1.5"], "--fraction"),
    ],
)
def test_bad_arguments_stop_before_reading_data(lf, argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        lf.main(["--data", str(tmp_path / "absent"), *argv])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_committee_file_is_named(lf, capsys, tmp_path):
    present = tmp_path / "a.pt"
    present.write_bytes(b"")
    with pytest.raises(SystemExit) as e:
        lf.main(["--data", str(tmp_path / "absent"), "mix", str(present), str(tmp_path / "b.pt")])
    assert e.value.code == 2
    assert "b.pt" in capsys.readouterr().err


def _sw_frames(n=4):
    from alip.data.oracles import make_oracle
    from alip.data.structures import generate_si_pool

    out = []
    for a in generate_si_pool(n, seed=3):
        a = a.copy()
        b = a.copy()
        b.calc = make_oracle("sw").make_calculator(b)
        a.calc = SinglePointCalculator(
            a, energy=b.get_potential_energy(), forces=b.get_forces(), stress=b.get_stress(voigt=True)
        )
        out.append(a)
    return out


def test_baseline_labels_scale_and_residuals(lf):
    frames = _sw_frames()
    a = frames[0]
    e, f, s = lf.baseline_labels(a, "sw", 1.0)
    e2, f2, s2 = lf.baseline_labels(a, "sw", 0.5)
    assert e == pytest.approx(a.get_potential_energy()) and e2 == pytest.approx(0.5 * e)
    assert np.allclose(f2, 0.5 * f) and np.allclose(s2, 0.5 * s) and np.allclose(f, a.get_forces())
    e0, f0, s0 = lf.baseline_labels(a, "none", 1.0)
    assert e0 == 0.0 and not f0.any() and not s0.any() and f0.shape == (len(a), 3)
    zero = lf.residual_frames(frames, lambda x: lf.baseline_labels(x, "sw", 1.0))  # the baseline is the oracle
    for r, src in zip(zero, frames, strict=True):
        assert r.get_potential_energy() == pytest.approx(0.0, abs=1e-9)
        assert np.allclose(r.get_forces(), 0.0, atol=1e-9) and np.allclose(r.get_stress(), 0.0, atol=1e-12)
        assert np.array_equal(r.positions, src.positions)
    half = lf.residual_frames(frames, lambda x: lf.baseline_labels(x, "sw", 0.5))
    assert half[1].get_potential_energy() == pytest.approx(0.5 * frames[1].get_potential_energy())


def test_plus_baseline_adds_the_baseline_to_the_committee(lf):
    from alip.models.calculator import Calculator
    from alip.models.training import TrainConfig, train_committee

    frames = _sw_frames()
    cfg = TrainConfig(n_members=2, hidden=[4], epochs=1, lbfgs_steps=0, val_fraction=0, seed=0, threads=1)
    committee = train_committee(frames, None, cfg).committee
    base = lambda x: lf.baseline_labels(x, "sw", 0.5)  # noqa: E731
    a = frames[2].copy()
    a.calc = lf.plus_baseline(committee, base)(a)
    b = frames[2].copy()
    b.calc = Calculator(committee)
    eb, fb, sb = base(frames[2])
    assert a.get_potential_energy() == pytest.approx(b.get_potential_energy() + eb)
    assert np.allclose(a.get_forces(), b.get_forces() + fb)
    assert np.allclose(a.get_stress(), b.get_stress() + sb)


def test_baseline_scale_must_be_positive(lf, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        lf.main(["--data", str(tmp_path / "absent"), "baseline", "--potential", "sw", "--scale", "0"])
    assert e.value.code == 2 and "--scale" in capsys.readouterr().err


@pytest.mark.parametrize(
    "train, message",
    [("{bad", "--train is not JSON"), ("[1]", "a JSON object"), ('{"seed": 3}', "other than seed and threads")],
)
def test_baseline_train_settings_are_checked_before_reading_data(lf, capsys, tmp_path, train, message):
    with pytest.raises(SystemExit) as e:
        lf.main(["--data", str(tmp_path / "absent"), "baseline", "--potential", "none", "--train", train])
    assert e.value.code == 2 and message in capsys.readouterr().err


def _mlearn_like(tmp_path, n_liquid=6, n_crystal=4):
    """A data directory of the shared set's shape: crystal frames at the ground state, liquid ones
    0.6 eV/atom above it, stresses as stored (AIMD-NVT: yz and xz exchanged)."""
    from ase.io import write

    frames = _frames([-4.6] * n_crystal + [-4.0] * n_liquid)
    for i, a in enumerate(frames):
        a.info["group"] = "AIMD-NVT"
        a.calc.results["stress"] = np.array([1.0, 2.0, 3.0, 4.0 + i, 5.0, 6.0]) * 1e-3
    data = tmp_path / "data"
    data.mkdir()
    write(data / "train.extxyz", frames)
    write(data / "test.extxyz", frames[:2] + frames[-2:])
    return data, frames


def test_split_holds_out_the_rest_of_one_phase_and_writes_the_files_as_stored(lf, tmp_path):
    data, frames = _mlearn_like(tmp_path)
    out = tmp_path / "fold"
    assert lf.main(["--data", str(data), "split", "--fraction", "0.5", "--out", str(out)]) == 0
    split = json.loads((out / "split.json").read_text())
    kept, held = split["kept"], split["held_out"]
    assert sorted(kept + held) == list(range(10)) and not set(kept) & set(held)
    assert set(range(4)) <= set(kept) and len(held) == 3 and all(i >= 4 for i in held)  # only liquid, half of 6
    from ase.io import read

    back = {name: read(out / f"{name}.extxyz", ":") for name in ("train", "heldout", "test")}
    assert [a.get_potential_energy() for a in back["heldout"]] == [frames[i].get_potential_energy() for i in held]
    assert len(back["test"]) == 4
    for a, b in zip(back["test"], frames[:2] + frames[-2:], strict=True):
        assert np.allclose(a.get_stress(), b.calc.results["stress"])
    for a, i in zip(back["train"], kept, strict=True):  # as stored: the shear stays exchanged as in the source
        assert np.allclose(a.get_stress(), frames[i].calc.results["stress"])
    assert lf.write_split(str(data), str(tmp_path / "again"), "liquid", 0.5, 0) == {"kept": kept, "held_out": held}


@pytest.mark.parametrize("fraction", ["0", "1", "1.5"])
def test_split_needs_a_fraction_that_holds_something_out(lf, tmp_path, capsys, fraction):
    with pytest.raises(SystemExit) as e:
        lf.main(["--data", str(tmp_path / "absent"), "split", "--fraction", fraction, "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and "--fraction" in capsys.readouterr().err


def test_split_refuses_to_overwrite_its_input(lf, tmp_path, capsys):
    data, _ = _mlearn_like(tmp_path)
    before = (data / "train.extxyz").read_bytes()
    with pytest.raises(SystemExit) as e:
        lf.main(["--data", str(data), "split", "--fraction", "0.5", "--out", str(data)])
    assert e.value.code == 2 and "overwrite" in capsys.readouterr().err
    assert (data / "train.extxyz").read_bytes() == before


def test_mix_judges_committees_on_the_frames_it_is_given(lf, tmp_path, capsys):
    from alip.models.training import TrainConfig, train_committee

    data, _ = _mlearn_like(tmp_path)
    sw = _sw_frames()
    paths = []
    for seed in (0, 1):
        cfg = TrainConfig(n_members=2, hidden=[4], epochs=1, lbfgs_steps=0, val_fraction=0, seed=seed, threads=1)
        committee = train_committee(sw, None, cfg).committee
        paths.append(str(tmp_path / f"c{seed}.pt"))
        committee.save(paths[-1])
    from ase.io import write

    judged = sw[:1] + sw[2:]  # 3 frames, the test set 4: the phases must be the judged frames' own
    write(tmp_path / "judged.extxyz", judged)
    assert lf.main(["--data", str(data), "mix", "--frames", str(tmp_path / "judged.extxyz"), *paths]) == 0
    table = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    from alip.models.committee import Committee

    err = lf.energy_errors(Committee.load(paths[0]).predict(judged).energies.mean(0), judged)
    liquid = np.array([a.get_potential_energy() / len(a) > -4.6 + 0.4 for a in judged])
    assert liquid.any() and not liquid.all()
    assert table["alone"]["c0"]["all"] == pytest.approx(np.sqrt(np.mean(err**2)))
    assert table["alone"]["c0"]["liquid"] == pytest.approx(np.sqrt(np.mean(err[liquid] ** 2)))
    assert table["alone"]["c0"]["crystal"] == pytest.approx(np.sqrt(np.mean(err[~liquid] ** 2)))
    with pytest.raises(SystemExit) as e:
        lf.main(["--data", str(data), "mix", "--frames", str(tmp_path / "absent.extxyz"), *paths])
    assert e.value.code == 2 and "absent.extxyz" in capsys.readouterr().err


def test_mix_reads_mace_models_and_names_clashing_files_by_their_paths(lf, tmp_path, capsys, monkeypatch):
    """A ``.model`` file goes through MACE's calculator (a stand-in here); two runs' files of the same
    name stay two models; frames without liquid give no correlation, not NaN."""
    import sys
    import types

    from ase.calculators.calculator import Calculator as AseCalculator

    class FakeMACE(AseCalculator):
        implemented_properties = ["energy"]

        def __init__(self, model_paths, device, default_dtype):
            super().__init__()
            self.shift = float(open(model_paths).read())  # eV per atom

        def calculate(self, atoms=None, properties=("energy",), system_changes=()):
            super().calculate(atoms, properties, system_changes)
            self.results["energy"] = (-4.6 + self.shift) * len(atoms)

    monkeypatch.setitem(sys.modules, "mace.calculators", types.SimpleNamespace(MACECalculator=FakeMACE))
    data, frames = _mlearn_like(tmp_path)
    paths = []
    for run, shift in (("a", 0.001), ("b", -0.002)):
        (tmp_path / run).mkdir()
        paths.append(tmp_path / run / "mace_stagetwo.model")
        paths[-1].write_text(str(shift))
    from ase.io import write

    write(tmp_path / "crystals.extxyz", frames[:4])  # at -4.6 eV/atom: crystal only
    monkeypatch.chdir(tmp_path)
    assert lf.main(["--data", str(data), "mix", "--frames", "crystals.extxyz", *map(str, paths)]) == 0
    out = capsys.readouterr().out
    table = json.loads(out.strip().splitlines()[-1])
    names = sorted(table["alone"])
    assert len(names) == 2 and all(n.endswith("mace_stagetwo") for n in names)
    assert [table["alone"][n]["all"] for n in names] == pytest.approx([1.0, 2.0])  # meV/atom
    assert table["correlation"] == {} and "nan" not in out.lower()
    assert "| — |" in out  # no liquid frames: a dash, not a number
