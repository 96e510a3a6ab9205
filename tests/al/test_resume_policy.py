"""Which configuration changes a resumed run accepts (alip.al.resume_policy)."""

from __future__ import annotations

import pytest

from alip.al.resume_policy import changes, check_changes
from alip.config import Config, ConfigError


def test_processes_is_safe_and_a_training_value_is_not():
    ran = Config.from_dict({"training": {"processes": "auto", "epochs": 300}})
    # processes only splits the members over processes: applied on resume
    faster = Config.from_dict({"training": {"processes": 2, "epochs": 300}})
    found = changes(ran, faster)
    assert [c.key for c in found] == ["training.processes"] and found[0].safe
    assert check_changes(found, "config.toml", force=False) == []
    # epochs changes what the committees so far were: refused, naming the key
    longer = Config.from_dict({"training": {"processes": "auto", "epochs": 400}})
    with pytest.raises(ConfigError, match="training.epochs changed from 300 to 400"):
        check_changes(changes(ran, longer), "config.toml", force=False)
