"""The `alip` entry point: every sub-command is registered and `info` reports the build."""

import json
import subprocess
import sys

import alip
from alip.cli import build_parser, main


def test_all_subcommands_registered():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) >= {
        "info",
        "generate",
        "featurize",
        "init",
        "run",
        "compare",
        "report",
        "demo",
        "train",
        "select",
        "export",
        "import-n2p2",
    }


def test_info_matches_build_info(capsys):
    assert main(["info"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == alip.build_info()
    assert printed["version"] == alip.__version__
    assert isinstance(printed["openmp"], bool) and printed["cuda"] in (True, False)


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "alip.cli", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"alip {alip.__version__}"


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
