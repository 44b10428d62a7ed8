"""Cold import of each handler module in a fresh interpreter, and which imports dominate (``-X importtime``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from typing import Any

from bench.common import HANDLER_ENV, LAYER, REPO_ROOT, median, progress

FUNCTIONS = ("authorizer", "ingest", "sync", "metrics")
# Medians of the import's CPU time, in ms (issue 10): CPU time moves far less than wall time with the machine's
# load. The authorizer is measured too but has no target.
TARGET_CPU_MS = {"ingest": 300.0, "sync": 450.0, "metrics": 350.0}
# After the import, the handler's one ``Lazy`` holder is built: what the first invocation adds before its first
# network call (the wiring builders import the adapters and create the boto3 clients then).
_CHILD = """
import sys, time, json
sys.path[:0] = [{fdir!r}, {layer!r}]
started, cpu = time.perf_counter(), time.process_time()
import app
ms, cpu_ms = (time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000
build = {build}
if build:
    from nrtsync.app.shared import Lazy
    [holder] = [value for value in vars(app).values() if isinstance(value, Lazy)]
    cpu = time.process_time()
    holder.get()
print(json.dumps({{"ms": ms, "cpu_ms": cpu_ms, "build_cpu_ms": (time.process_time() - cpu) * 1000 if build else None}}))
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT", "POWERTOOLS_", "PYTHON"))}
    return env | HANDLER_ENV | {"POWERTOOLS_SERVICE_NAME": "bench"}


def _child(function: str, *, build: bool) -> str:
    return _CHILD.format(fdir=str(REPO_ROOT / "functions" / function), layer=str(LAYER), build=build)


def import_ms(function: str, *, importtime: bool = False) -> tuple[float, float, str]:
    """(wall ms, CPU ms, stderr) of importing the handler module in a fresh interpreter."""
    measured, stderr = _run_child(function, importtime=importtime, build=False)
    return float(measured["ms"]), float(measured["cpu_ms"]), stderr


def first_build_cpu_ms(function: str) -> float:
    """CPU ms of building the handler's service right after a cold import (the first invocation's share)."""
    measured, _ = _run_child(function, importtime=False, build=True)
    return float(measured["build_cpu_ms"])


def _run_child(function: str, *, importtime: bool, build: bool) -> tuple[dict[str, Any], str]:
    args = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", _child(function, build=build)]
    done = subprocess.run(args, capture_output=True, text=True, env=_env(), cwd=REPO_ROOT, check=True, timeout=60)  # noqa: S603
    measured: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return measured, done.stderr


def top_imports(stderr: str, top: int = 5) -> list[dict[str, Any]]:
    """Self time summed per top-level package, from ``-X importtime`` lines; the biggest ``top``."""
    per_root: dict[str, int] = defaultdict(int)
    total = 0
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        per_root[name.split(".")[0]] += int(self_us)
        total += int(self_us)
    ranked = sorted(per_root.items(), key=lambda kv: kv[1], reverse=True)[:top]
    return [{"package": name, "ms": round(us / 1000, 1), "share": round(us / total, 2)} for name, us in ranked]


def interpreter_ms(runs: int) -> float:
    """A fresh interpreter that imports nothing of ours (what every cold import sits on top of)."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, env=_env(), timeout=30)
        samples.append((time.perf_counter() - started) * 1000)
    return round(median(samples), 1)


def bench_cold_imports(runs: int = 7) -> dict[str, Any]:
    result: dict[str, Any] = {
        "runs": runs,
        "import_ms": {},
        "import_cpu_ms": {},
        "import_ms_all_runs": {},
        "import_cpu_ms_all_runs": {},
        "first_build_cpu_ms": {},
        "top_imports": {},
    }
    for function in FUNCTIONS:
        progress(f"cold import: {function} x{runs} (fresh interpreter each)")
        import_ms(function)  # bytecode caches written once, as an installed package has them
        samples = [import_ms(function) for _ in range(runs)]
        result["import_ms"][function] = round(median([wall for wall, _, _ in samples]), 1)
        # CPU time of the import: much less sensitive than wall time to other jobs on a shared machine.
        result["import_cpu_ms"][function] = round(median([cpu for _, cpu, _ in samples]), 1)
        result["import_ms_all_runs"][function] = [round(wall, 1) for wall, _, _ in samples]
        result["import_cpu_ms_all_runs"][function] = [round(cpu, 1) for _, cpu, _ in samples]
        # Separate runs, so that the import samples above are not disturbed by the build.
        result["first_build_cpu_ms"][function] = round(median([first_build_cpu_ms(function) for _ in range(runs)]), 1)
        _, _, stderr = import_ms(function, importtime=True)
        result["top_imports"][function] = top_imports(stderr)
    result["interpreter_start_ms"] = interpreter_ms(runs)
    return result
