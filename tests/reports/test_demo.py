"""`alip demo --quick` end to end: three strategies on the same pool, a report that links
every figure, and a printed summary that matches the files; the CLI's error paths."""

from __future__ import annotations

import csv
import json
import re

import pytest

from alip.cli import report as cli_report
from alip.reports import demo


@pytest.mark.slow
def test_demo_quick_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ALIP_CACHE_DIR", str(tmp_path / "cache"))  # the MD test set is generated here
    out = tmp_path / "demo"
    assert cli_report.main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    index = out / "report" / "index.html"
    assert f"report: {index}" in printed
    pngs = {p.name for p in (out / "report").glob("*.png")}
    expected = {
        "learning_curves.png",
        "ev_curve.png",
        "parity.png",
        "uncertainty_vs_error.png",
        "selection_over_time.png",
        "violins_by_family.png",
        "violins_selected_qbc.png",
        "violins_selected_emc.png",
        "violins_selected_random.png",
    }
    assert pngs == expected
    assert set(re.findall(r"<img src='([^']+)'", index.read_text())) == expected

    summary = json.loads((out / "report" / "summary.json").read_text())
    assert summary["failures"] == {}
    assert list(summary["strategies"]) == ["qbc", "emc", "random"]
    budget = demo.QUICK["run"]["budget"]
    with open(out / "learning_curves.csv") as fh:
        rows = list(csv.DictReader(fh))
    for strategy, st in summary["strategies"].items():
        mine = [r for r in rows if r["strategy"] == strategy]
        assert [int(r["n_labels"]) for r in mine] == [8, 16, 24]
        assert st["n_labels"]["mean"] == budget
        assert st["energy_rmse_mev_per_atom"]["mean"] == pytest.approx(float(mine[-1]["energy_rmse_mev_per_atom"]))
    # the oracle's curve comes from the labeled volume series: Stillinger–Weber's diamond minimum
    fit = summary["oracle_ev"]["fit"]
    assert summary["oracle_ev"]["label"] == "oracle (sw, stored labels)"
    assert fit["a0"] == pytest.approx(5.431, abs=3e-3) and fit["e0"] == pytest.approx(-4.3366, abs=2e-3)
    # the printed table is the summary: one line per strategy, then the oracle
    lines = printed.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("strategy"))
    body = lines[header + 2 : header + 6]
    assert [line.split()[0] for line in body] == ["qbc", "emc", "random", "oracle"]
    assert f"{fit['a0']:.4f}" in body[3] and f"{fit['B0']:.1f}" in body[3]
    for line, strategy in zip(body, ["qbc", "emc", "random"]):
        e_rmse = summary["strategies"][strategy]["energy_rmse_mev_per_atom"]["mean"]
        assert line.split()[2] == str(budget) and f"{e_rmse:.1f}" in line
    # the physical MD test set sits beside the family test set, its errors printed per subset
    md = ["md_crystal_300K", "md_crystal_900K", "md_crystal_1500K", "md_vacancy_900K", "md_liquid_2000K"]
    assert len(list((tmp_path / "cache").glob("md_testset-*.extxyz"))) == 1
    final = json.loads((out / "qbc_seed0" / "iterations" / "iter_002.json").read_text())["errors_by_family"]
    assert set(md) <= set(final) and all(final[k]["n"] == 2 for k in md)
    start = next(i for i, line in enumerate(lines) if line.startswith("errors per test subset"))
    table = {line.split()[0]: line.split() for line in lines[start + 3 :] if line.strip()}
    assert set(md) <= set(table) and "volume" in table
    for k in md:  # n, then F for qbc, emc, random, then E: the qbc force RMSE is that of its final record
        assert table[k][1] == "2" and table[k][2] == f"{final[k]['force_rmse_ev_per_ang']:.3f}"
    assert "Errors per test subset" in index.read_text()
    # the demo leaves a configuration that reruns it
    assert (out / "demo.toml").is_file() and "budget = 24" in (out / "demo.toml").read_text()


def test_demo_refuses_a_directory_it_did_not_write(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not written by `alip demo`"):
        demo.run_demo(tmp_path, quick=True, progress=False)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_demo_configs_are_valid_and_quick_is_smaller():
    full, quick = demo.demo_config(), demo.demo_config(quick=True)
    assert full.run.budget > quick.run.budget and full.pool.n > quick.pool.n
    assert full.oracle.spec == quick.oracle.spec == "sw"
    n_iter = 1 + (full.run.budget - full.run.n_initial) // full.run.batch_size
    assert n_iter >= 5  # enough iterations for a learning curve and the selection plot


def test_cli_errors(tmp_path, capsys):
    assert cli_report.main(["report", str(tmp_path)]) == 2
    assert "neither a run directory" in capsys.readouterr().err
    assert cli_report.main(["report", str(tmp_path), "--descriptor-sample", "0"]) == 2
    assert cli_report.main(["demo", "--seeds", "0", "--out", str(tmp_path / "d")]) == 2
    assert not (tmp_path / "d").exists()
