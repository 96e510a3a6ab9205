"""The package's layers import only downward (README, Layout), and the leaves stay leaves.

alip.config (defaults), alip.files (atomic writes), alip._lazy (lazy exports) and
alip._version import nothing of alip; then core < data < models < explore < al < reports < cli.
Checked on the source with ast, so an upward import fails here even when it sits inside a
function.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import alip

PACKAGE = Path(alip.__file__).resolve().parent
LAYERS = ("core", "data", "models", "explore", "al", "reports", "cli")
LEAVES = ("alip._version", "alip._lazy", "alip.config", "alip.files")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def rank(module: str) -> int:
    """0 for the package root and its leaves, 1 + the layer index for a subpackage module."""
    parts = module.split(".")
    return 1 + LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else 0


def alip_imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported alip module) of every import in ``path``, functions included."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "alip"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "alip":
                continue
            for a in node.names:  # `from alip.data import io` imports the module alip.data.io
                sub = f"{target}.{a.name}"
                file = PACKAGE.parent / Path(*sub.split("."))
                known = sub == "alip._core" or file.with_suffix(".py").is_file() or file.is_dir()
                out.append((node.lineno, sub if known else target))
    return out


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_layer():
    stray = [
        module_name(p)
        for p in MODULES
        if rank(module_name(p)) == 0 and module_name(p) not in ("alip", "alip.__main__", *LEAVES)
    ]
    assert not stray, f"modules outside the layers {LAYERS}: {stray}"


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_imports_go_only_downward(path):
    me = module_name(path)
    for line, target in alip_imports(path):
        assert me not in LEAVES, f"{me}:{line} is a leaf but imports {target}"
        assert target != "alip" or me == "alip", f"{me}:{line} imports the package root; import the module itself"
        assert rank(target) <= rank(me), (
            f"{me}:{line} imports {target}: layer {LAYERS[rank(target) - 1]} is above {LAYERS[rank(me) - 1]}"
        )


def test_no_import_circles():
    graph = {module_name(p): {t for _, t in alip_imports(p)} for p in MODULES}
    graph = {m: {t for t in ts if t in graph and t != m and not m.startswith(t + ".")} for m, ts in graph.items()}
    state: dict[str, int] = {}

    def visit(m: str, trail: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                raise AssertionError(f"import circle: {' -> '.join(trail[trail.index(t) :] + [t])}")
            if t not in state:
                visit(t, trail + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_import_alip_and_featurization_do_not_import_torch():
    code = (
        "import sys, alip, alip.core, alip.data, alip.cli, alip.data.featurize, alip.data.feature_store; "
        "alip.ACSF; alip.FeatureStore; alip.core.Batch; alip.data.open_pool; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_namespace_exports_only_the_api():
    assert set(alip.__all__) <= set(dir(alip))
    for name in ("Any", "annotations", "importlib"):
        assert not hasattr(alip, name), f"alip exports {name}"
    for name in alip.__all__:
        getattr(alip, name)


@pytest.mark.parametrize("layer", LAYERS)
def test_every_subpackage_exports_its_own_api(layer):
    """Each layer's __all__ names exist, are defined in that layer (an export is not a second
    home for a concept of another layer), are listed in their module's own __all__ where it
    has one, and do not shadow a submodule of the same name."""
    package = importlib.import_module(f"alip.{layer}")
    assert isinstance(package.__all__, list) and package.__all__, f"alip.{layer} has no __all__"
    assert len(set(package.__all__)) == len(package.__all__), f"alip.{layer}.__all__ repeats a name"
    submodules = {p.stem for p in (PACKAGE / layer).glob("*.py")} | {
        p.name for p in (PACKAGE / layer).iterdir() if p.is_dir()
    }
    missing = set(package.__all__) - set(dir(package))
    assert not missing, f"alip.{layer}.__all__ names that dir() does not list: {sorted(missing)}"
    for name in package.__all__:
        assert name not in submodules, f"alip.{layer}.{name} is also a submodule"
        obj = getattr(package, name)
        home = importlib.import_module(obj.__module__)
        assert obj.__module__.startswith(f"alip.{layer}"), f"alip.{layer}.{name} is defined in {obj.__module__}"
        assert getattr(home, name) is obj
        if hasattr(home, "__all__"):
            assert name in home.__all__, f"{obj.__module__}.__all__ lacks {name}"
    with pytest.raises(AttributeError, match="no attribute"):
        package.no_such_name  # noqa: B018
