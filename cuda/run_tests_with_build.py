"""Run pytest against an alip._core built elsewhere (e.g. a CUDA build in a CMake build
directory), without installing it: the package sources come from python/alip, the
compiled module from BUILD_DIR, and any editable-install finder of alip is bypassed.

    python cuda/run_tests_with_build.py BUILD_DIR [pytest args...]

Used by .ci/cuda_compile_check.sh to import a CUDA build on a machine without a GPU
(build_info()["cuda"] must be True, GPU calls must raise a clear RuntimeError).
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    build = sys.argv[1]
    modules = glob.glob(os.path.join(build, "_core*.so")) + glob.glob(os.path.join(build, "_core*.pyd"))
    if not modules:
        print(f"no _core module in {build}", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="alip-build-")
    try:
        pkg = os.path.join(tmp, "alip")
        shutil.copytree(
            os.path.join(ROOT, "python", "alip"), pkg, ignore=shutil.ignore_patterns("_core*", "__pycache__")
        )
        shutil.copy2(modules[0], pkg)
        sys.meta_path[:] = [
            f
            for f in sys.meta_path
            if "alip" not in type(f).__module__ and type(f).__name__ != "ScikitBuildRedirectingFinder"
        ]
        for name in [m for m in sys.modules if m == "alip" or m.startswith("alip.")]:
            del sys.modules[name]
        sys.path.insert(0, tmp)
        os.environ["PYTHONPATH"] = tmp + os.pathsep + os.environ.get("PYTHONPATH", "")
        import alip

        assert os.path.dirname(alip.__file__) == pkg, alip.__file__
        print(f"alip from {pkg}: build_info = {alip.build_info()}")
        import pytest

        return int(pytest.main(["-p", "no:cacheprovider", "--rootdir", ROOT, *sys.argv[2:]]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
