"""`pip install .` into a clean virtualenv gives a working `nrtsync` outside the checkout (what `pipx install .` does).

The package must declare everything the CLI imports, the layer's `nrtsync` package and its default mapping
included: the checkout's `.pth` and `pythonpath` are not there to hide a missing one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

import nrtsync

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
_NOT_SOURCE = (".git", ".venv*", ".aws-sam", ".local", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the project installed from the checkout, by pip and the registry, as a user would."""
    env_dir = tmp_path_factory.mktemp("clean-venv")
    venv.create(env_dir, with_pip=True)
    # A copy of the sources: pip builds in the tree it is given, and the checkout must stay clean.
    source = tmp_path_factory.mktemp("source") / "nrtsync"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
    pip = subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        env=_clean_environment(),
        check=False,
    )
    assert pip.returncode == 0, pip.stderr[-4000:]
    return env_dir / "bin"


def _clean_environment() -> dict[str, str]:
    # Nothing of the checkout's environment may make an import work that the package itself does not provide.
    return {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}


def _nrtsync(bin_dir: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "nrtsync"), *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env=_clean_environment(),
        check=False,
    )


def test_the_installed_cli_answers_help_version_and_plan_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    # When the installed script runs in a directory that is not the checkout
    helped = _nrtsync(installed, tmp_path, "--help")
    version = _nrtsync(installed, tmp_path, "--version")
    planned = _nrtsync(installed, tmp_path, "plan", "--changes-per-day", "20000", "--licences", "10")

    # Then each works: the help, the version of the layer's package, and the planner's recommendation
    assert (helped.returncode, version.returncode, planned.returncode) == (0, 0, 0), helped.stderr + planned.stderr
    assert "exit codes:" in helped.stdout
    assert version.stdout.strip() == f"nrtsync {nrtsync.__version__}"
    assert "recommended: BatchingWindowSeconds=" in planned.stdout


def test_the_installed_package_ships_the_default_mapping_and_not_the_checkout(installed: Path, tmp_path: Path) -> None:
    code = (
        "import nrtsync, nrtsync_cli; from nrtsync.domain.mapping import load_mapping; "
        "print(nrtsync.__file__); print(nrtsync_cli.__file__); print(len(load_mapping().objects))"
    )
    done = subprocess.run(
        [str(installed / "python"), "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env=_clean_environment(),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    package, cli, objects = done.stdout.split()
    # the clean venv's own copies, not the checkout's nor its venv's
    assert (package.startswith(str(installed.parent)), cli.startswith(str(installed.parent))) == (True, True)
    assert sys.prefix not in package
    assert int(objects) >= 4
