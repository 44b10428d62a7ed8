"""The `sam build` output imports as Lambda would import it: each function's code plus the layer, nothing else.

The layer is built for arm64 and this machine may not be, so its native extension modules cannot load here.
The test proves they are all aarch64, then imports from a copy of the layer in which only those native files
are swapped for the host's builds of the very same distribution versions (from .venv). Everything pure Python,
and the set of packages present, is exactly what ships.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest

from nrtsync_local.template import function_environment, load_template

pytestmark = pytest.mark.build

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".aws-sam" / "build"
LAYER = BUILD / "SharedLayer" / "python"
REQUIREMENTS = ROOT / "layers" / "shared" / "requirements.txt"
EM_AARCH64 = 183
HOST_MACHINES = {"x86_64": 62, "aarch64": EM_AARCH64, "arm64": EM_AARCH64}
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
DEV_ONLY = {"moto", "pytest", "_pytest", "hypothesis", "mypy", "ruff", "trustme", "responses", "boto3_stubs"}
SETTINGS_CLASS = {
    "CalloutAuthorizerFunction": "nrtsync.services.ingest.settings:AuthorizerSettings",
    "IngestFunction": "nrtsync.services.ingest.settings:IngestSettings",
    "SyncFunction": "nrtsync.services.sync.settings:SyncSettings",
    "MetricsFunction": "nrtsync.services.metrics.settings:MetricsSettings",
    "ReconcileFunction": "nrtsync.services.reconcile.settings:ReconcileSettings",
    "BackfillFunction": "nrtsync.services.backfill.settings:BackfillSettings",
}
DUMMY_REFS = {
    "AWS::StackName": "nrtsync-build-test",
    "AWS::Region": "eu-west-1",
    "CalloutQueue": "https://sqs.eu-west-1.amazonaws.com/000000000000/callouts",
    "CalloutQueue.Arn": "arn:aws:sqs:eu-west-1:000000000000:callouts",
    "CalloutSecret": "arn:aws:secretsmanager:eu-west-1:000000000000:secret:callout",
    "SalesforceSecret": "arn:aws:secretsmanager:eu-west-1:000000000000:secret:salesforce",
    "ZuoraSecret": "arn:aws:secretsmanager:eu-west-1:000000000000:secret:zuora",
    "SyncStateTable": "sync-state",
    "SyncHistoryTable": "sync-history",
}

if not (LAYER / "nrtsync").is_dir():
    pytest.skip(
        f"no `sam build` output in {BUILD.relative_to(ROOT)}: run `make build` first (`make test` does)",
        allow_module_level=True,
    )

TEMPLATE = load_template()
FUNCTIONS = sorted(name for name, spec in TEMPLATE["Resources"].items() if spec["Type"] == "AWS::Serverless::Function")


def elf_machine(path: Path) -> int | None:
    """The ELF header's e_machine, or None for a file that is not ELF."""
    with path.open("rb") as stream:
        header = stream.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


def native_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file() and elf_machine(path) is not None)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def layer_distributions(root: Path) -> dict[str, metadata.Distribution]:
    return {canonical(dist.metadata["Name"]): dist for dist in metadata.distributions(path=[str(root)])}


def owner_of(relative: str, distributions: dict[str, metadata.Distribution]) -> str | None:
    for name, dist in distributions.items():
        if any(str(file) == relative for file in dist.files or []):
            return name
    return None


def pinned_requirements() -> dict[str, str]:
    pins = {}
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            name, _, version = requirement.partition("==")
            pins[canonical(name)] = version.strip()
    return pins


def test_every_function_was_built() -> None:
    assert FUNCTIONS == [
        "BackfillFunction",
        "CalloutAuthorizerFunction",
        "IngestFunction",
        "MetricsFunction",
        "ReconcileFunction",
        "SyncFunction",
    ]
    for name in FUNCTIONS:
        assert (BUILD / name / "app.py").is_file(), f"{name} has no app.py in the build"


def test_native_files_in_the_layer_are_aarch64() -> None:
    natives = native_files(LAYER)
    assert natives, "the layer has no native extensions: was it built without its requirements?"
    wrong = {str(path.relative_to(LAYER)): elf_machine(path) for path in natives if elf_machine(path) != EM_AARCH64}
    assert wrong == {}, "native files not built for arm64 (BuildArchitecture missing on the layer?)"
    assert any(path.name.startswith("_pydantic_core.") for path in natives)


def test_layer_ships_exactly_the_pinned_runtime_requirements() -> None:
    shipped = {name: dist.version for name, dist in layer_distributions(LAYER).items()}
    assert shipped == pinned_requirements()
    top_level = {path.name.split(".")[0].split("-")[0] for path in LAYER.iterdir()}
    assert not (top_level & DEV_ONLY), f"test or dev packages in the layer: {sorted(top_level & DEV_ONLY)}"


def test_layer_holds_no_operator_cli() -> None:
    # The CLI (nrtsync_cli) runs on an operator's machine with the operator's credentials, never in Lambda.
    package = LAYER / "nrtsync"
    modules = {path.relative_to(package).with_suffix("").as_posix() for path in package.rglob("*.py")}
    assert "domain/settings" in modules, "the layer's package moved: update this test"
    assert {"cli", "operations", "__main__"} & modules == set()
    assert not (LAYER / "nrtsync_cli").exists()


def test_layer_and_largest_function_fit_lambdas_unzipped_limit() -> None:
    def size(root: Path) -> int:
        return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())

    total = size(BUILD / "SharedLayer") + max(size(BUILD / name) for name in FUNCTIONS)
    assert total < LAMBDA_UNZIPPED_LIMIT, f"{total / 2**20:.0f} MiB unzipped"


@pytest.fixture(scope="module")
def host_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the built layer whose native files are the host's builds of the same distribution versions."""
    host_machine = HOST_MACHINES.get(platform.machine())
    if host_machine is None:  # pragma: no cover - only x86_64 and arm64 hosts are expected
        pytest.skip(f"no ELF machine known for host {platform.machine()}")
    copy = tmp_path_factory.mktemp("layer") / "python"
    shutil.copytree(LAYER, copy, symlinks=True)
    if host_machine == EM_AARCH64:
        return copy  # an arm64 host loads the built files as they are
    distributions = layer_distributions(copy)
    owners: dict[str, list[Path]] = {}
    for path in native_files(copy):
        relative = path.relative_to(copy).as_posix()
        owner = owner_of(relative, distributions)
        assert owner is not None, f"{relative} belongs to no distribution's RECORD"
        owners.setdefault(owner, []).append(path)
    for name, paths in owners.items():
        host = metadata.distribution(name)
        assert host.version == distributions[name].version, (
            f"{name}: layer {distributions[name].version}, host {host.version}"
        )
        for path in paths:
            path.unlink()
        host_natives = [Path(str(host.locate_file(file))) for file in host.files or []]
        host_natives = [path for path in host_natives if path.is_file() and elf_machine(path) == host_machine]
        assert host_natives, f"{name} {host.version} has no native files on this host"
        for source in host_natives:
            target = copy / source.relative_to(Path(str(host.locate_file(""))))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    assert {elf_machine(path) for path in native_files(copy)} == {host_machine}
    python_files = {
        path.relative_to(LAYER) for path in LAYER.rglob("*") if path.is_file() and elf_machine(path) is None
    }
    copied_python = {path.relative_to(copy) for path in copy.rglob("*") if path.is_file() and elf_machine(path) is None}
    assert copied_python == python_files, "the swap changed more than native files"
    return copy


def test_elf_machine_reads_the_host_and_ignores_python_files() -> None:
    dynload = Path(sysconfig.get_paths()["stdlib"]) / "lib-dynload"
    host_extension = next(dynload.glob("*.so"))
    assert elf_machine(host_extension) == HOST_MACHINES[platform.machine()]
    assert elf_machine(Path(__file__)) is None


# Runs in `python -I -S`: no site-packages, no user site, no PYTHON* variables, no current directory.
IMPORT_PROBE = """
import importlib, json, socket, sys, sysconfig

function_dir, layer_dir, settings_class = sys.argv[1:4]
# "stdlib" only: in a venv "platstdlib" is the venv's lib/, which contains its site-packages.
stdlib = (sysconfig.get_paths()["stdlib"] + "/",)
sys.path[:] = [function_dir, layer_dir] + [p for p in sys.path if (p + "/").startswith(stdlib)]

def no_network(*args, **kwargs):
    raise RuntimeError("the import tried to open a network connection")

socket.socket.connect = no_network
socket.create_connection = no_network

app = importlib.import_module("app")
settings_module, settings_name = settings_class.split(":")
settings = getattr(importlib.import_module(settings_module), settings_name).from_env()
allowed = (function_dir + "/", layer_dir + "/", *stdlib)
outside = sorted(
    name for name, module in list(sys.modules.items())
    if getattr(module, "__file__", None) and not module.__file__.startswith(allowed)
)
print(json.dumps({
    "callable": callable(getattr(app, "lambda_handler", None)),
    "app": app.__file__,
    "pydantic_core": sys.modules["pydantic_core"].__file__ if "pydantic_core" in sys.modules else None,
    "outside": outside,
    "settings": type(settings).__name__,
}))
"""


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_imports_with_only_its_code_and_the_layer(function: str, host_layer: Path) -> None:
    # Given the environment the template gives the function, with dummy names for deployed resources
    environment = function_environment(TEMPLATE, function, refs=DUMMY_REFS)
    unresolved = sorted(key for key, value in environment.items() if value is None)
    assert unresolved == [], f"{function}: variables without a value here: {unresolved}"
    env = {key: value for key, value in environment.items() if value is not None} | {
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "LANG": "C.UTF-8",
    }
    function_dir = BUILD / function
    # When a fresh interpreter imports the handler with only the function's code and the layer on sys.path
    completed = subprocess.run(
        [sys.executable, "-I", "-S", "-c", IMPORT_PROBE, str(function_dir), str(host_layer), SETTINGS_CLASS[function]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=str(host_layer.parent),
    )
    # Then it imports, its handler is callable, and nothing came from outside the build
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["callable"] is True
    assert result["app"] == str(function_dir / "app.py")
    assert result["outside"] == []
    assert result["settings"] == SETTINGS_CLASS[function].split(":")[1]
    if result["pydantic_core"] is not None:
        assert result["pydantic_core"].startswith(str(host_layer))


def test_probe_interpreter_is_the_runtime_version() -> None:
    # The import test is only as good as its interpreter: the template's runtime, without site-packages.
    runtime = TEMPLATE["Globals"]["Function"]["Runtime"]
    assert runtime == f"python{sys.version_info.major}.{sys.version_info.minor}"
    completed = subprocess.run(
        [sys.executable, "-I", "-S", "-c", "import sys, json; print(json.dumps(sys.path))"],
        capture_output=True,
        text=True,
        check=True,
        env={},
    )
    paths = json.loads(completed.stdout)
    purelib = sysconfig.get_paths()["purelib"]
    assert purelib not in paths
    assert not any("site-packages" in path for path in paths)


def test_probe_fails_when_a_runtime_dependency_is_missing(host_layer: Path, tmp_path: Path) -> None:
    # Given a layer without pydantic (a dependency removed from requirements.txt, say)
    broken = tmp_path / "python"
    shutil.copytree(host_layer, broken, symlinks=True, ignore=shutil.ignore_patterns("pydantic"))
    # When the ingest handler is imported from it
    completed = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            IMPORT_PROBE,
            str(BUILD / "IngestFunction"),
            str(broken),
            "nrtsync.services.ingest.settings:IngestSettings",
        ],
        env={"AWS_DEFAULT_REGION": "eu-west-1", "PATH": os.defpath},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Then the import fails instead of silently finding the package somewhere else
    assert completed.returncode != 0
    assert "ModuleNotFoundError" in completed.stderr
