"""bench/featurize.py --rounds: per-round ratios, their median and range."""

from __future__ import annotations

import pytest
from bench_scripts import load_bench


@pytest.fixture(scope="module")
def fz():
    return load_bench("featurize")


def test_ratios_are_taken_within_each_round(fz):
    rounds = [
        {"alip": {"Si 512": 100.0}, "peer": {"Si 512": 4.0}},
        {"alip": {"Si 512": 60.0}, "peer": {"Si 512": 2.0}},  # both slower: the ratio holds better
        {"alip": {"Si 512": 90.0}, "peer": {"Si 512": None}},  # peer not measured: no ratio
        {"alip": {"Si 512": 80.0}, "peer": {"Si 512": 2.5}},
    ]
    ratios = fz.round_ratios(rounds, "alip", "peer", "Si 512")
    assert ratios == [25.0, 30.0, 32.0]
    assert fz.median(ratios) == 30.0
    assert fz.fmt_ratio_range(ratios) == "30.0× (25.0–32.0)"
    assert fz.fmt_ratio_range([25.0]) == fz.fmt_ratio(25.0)  # one round: the plain ratio
    assert fz.fmt_ratio_range([]) == "—"
    assert fz.round_ratios(rounds, "alip", "peer", "Si 64") == []


def test_rounds_must_be_positive(fz):
    with pytest.raises(SystemExit):
        fz.main(["--rounds", "0"])
