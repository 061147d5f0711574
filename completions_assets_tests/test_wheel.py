"""What ships: the wheel holds the product, including what `make demo`/`make dev`
run and the local instance configuration they copy, and neither the tests nor
the benchmark."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from completions_assets.local.launch import REPO

pytestmark = pytest.mark.e2e

# Not copied: what a checkout may hold beside its tracked files. Top level only,
# so that a product module or package of any name is copied.
TOP_LEVEL_SKIPPED = {".git", ".venv", ".pytest_cache", ".dagster_home", "data", "build", "dist"}

SHIPPED = {
    "completions_assets/__init__.py",
    "completions_assets/definitions.py",
    "completions_assets/sandbox/__main__.py",
    "completions_assets/local/demo.py",
    "completions_assets/local/dev.py",
    "completions_assets/local/launch.py",
    "completions_assets/local/dagster.yaml",
}


def _skip(directory: str, names: list[str]) -> set[str]:
    skipped = {name for name in names if name == "__pycache__" or name.endswith(".egg-info")}
    if Path(directory) == REPO:
        skipped |= TOP_LEVEL_SKIPPED & set(names)
    return skipped


def test_the_wheel_holds_the_product_and_not_the_tests_or_the_benchmark(tmp_path):
    # Built from a copy: setuptools writes build/ and *.egg-info next to the
    # sources, and the repository must not collect them.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=_skip)
    wheels = tmp_path / "wheels"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--quiet",
            "--wheel-dir",
            str(wheels),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [wheel] = wheels.glob("completions_assets-*.whl")

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    missing = SHIPPED - names
    assert not missing, f"not in {wheel.name}: {sorted(missing)}"
    stray = sorted(n for n in names if n.startswith(("completions_assets_tests/", "completions_assets_bench/")))
    assert not stray, f"in {wheel.name} but not the product: {stray}"
    top_level = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top_level == {"completions_assets"}, f"{wheel.name} holds more than the product: {sorted(top_level)}"
