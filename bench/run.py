"""``make bench``: the headline benchmarks and the cost model into bench/results.json, docs/BENCHMARKS.md and the
README's figures (under 10 minutes on 2 cores); ``make bench-backfill`` (``--only backfill``) the initial load.

    .venv/bin/python -m bench.run [--quick] [--skip-e2e] [--only cold|cost|backfill|zuora-callouts]

Servers it starts (the Salesforce stand-in as a child process, moto in server mode as a thread, the local
stack) bind 127.0.0.1 on free ports and are stopped by their own pid / shutdown before it returns.
Progress goes to stderr. ``--quick`` runs fewer repetitions (a smoke test of the harness, not figures to quote).
``--only cold`` measures only the handlers' cold imports (under a minute) and replaces just those figures in
the last full run's results, saying when each part was measured.
``--only cost`` measures only what a change costs on the AWS bill and the Salesforce API budget per batching
window (bench/cost_bench.py, about 5 minutes) and replaces just the ``cost`` section the same way.
``--only zuora-callouts`` measures only the end-to-end latency with the Zuora stand-in's own callouts (records
changed in the stand-in, its callouts delivered as Zuora delivers them: bench/zuora_callouts_bench.py, about a
minute) and replaces just the ``e2e_zuora`` section the same way.
``--only backfill`` measures only the initial load of 100,000 Zuora records through the local stack, the live
callouts beside it and a reconcile sweep over the org in step (bench/backfill_bench.py, about an hour on 2
cores; ``--quick``: 10,000 records) and replaces just the ``backfill`` section the same way.

``results["sections"]`` says, per section, when and by which command its figures were measured: the file merges
runs, and a reader must never take figures measured hours apart for one run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, prepare_environment, progress

TARGET_CALLS_PER_RECORD = 1 / 150
TARGET_SPEEDUP = 10.0
TARGET_E2E_P90_S = 10.0
TARGET_E2E_P50_S = 120.0
TARGET_PEAK_RSS_MB = 128.0
# The sections one `make bench` measures together.
MEASURED_BY_MAKE_BENCH = (
    "headline",
    "targets",
    "sync",
    "e2e",
    "e2e_zuora",
    "ingest",
    "cold_imports",
    "peak_rss",
    "metrics_window",
    "cost",
)


def _peak_rss(standin_info: dict[str, Any]) -> dict[str, Any]:
    progress("peak RSS: one 200-record sync invocation in a fresh interpreter")
    done = subprocess.run(  # noqa: S603 - our own module, our interpreter
        [sys.executable, "-m", "bench.rss_child", json.dumps(standin_info)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=True,
        timeout=120,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _metrics_window(runs: int) -> dict[str, Any]:
    progress(f"metrics window: bench/bench_metrics_window.py --runs {runs} (7 days of 1 M records/day)")
    done = subprocess.run(  # noqa: S603
        [sys.executable, str(REPO_ROOT / "bench" / "bench_metrics_window.py"), "--runs", str(runs)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=True,
        timeout=300,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _sync_phase(quick: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    from bench import sync_bench  # noqa: PLC0415
    from bench.workload import Workload, seed_parents  # noqa: PLC0415
    from nrtsync.adapters.aws.state import DynamoVersionStore  # noqa: PLC0415
    from nrtsync_fakes.state import InMemoryVersionStore  # noqa: PLC0415
    from nrtsync_local.standin.process import StandinProcess  # noqa: PLC0415

    workdir = Path(tempfile.mkdtemp(prefix="nrtsync-bench-"))
    process = StandinProcess(workdir)
    standin = process.start()
    progress(f"Salesforce stand-in pid {standin.pid} at {standin.url}")
    result: dict[str, Any] = {}
    try:
        workload = Workload()
        seed_parents(standin, workload)
        progress("sync vs baseline at 150 ms per Salesforce call (baseline: ~31 s per 200 records)")
        result["latency_150ms"] = sync_bench.compare_at_latency(
            standin, 150, sync_reps=3 if quick else 5, baseline_reps=1 if quick else 2, workload=workload
        )
        progress("sync vs baseline at 0 ms")
        result["latency_0ms"] = sync_bench.compare_at_latency(
            standin, 0, sync_reps=3 if quick else 7, baseline_reps=2 if quick else 5, workload=workload
        )
        progress("API calls on a batch of one object type")
        result["single_type_batch"] = sync_bench.single_type_batch(standin)
        progress("experiment: one shared thread pool in the sync service (0 ms)")
        result["pool_experiment"] = sync_bench.pool_experiment(standin, reps=3 if quick else 7, workload=workload)
        progress("sync with state/history on moto (server mode) at 150 ms")
        result["moto_150ms"] = sync_bench.sync_on_moto(standin, 150, reps=1 if quick else 3, workload=workload)
        with sync_bench.moto_resources(standin, "bench-state-calls") as res:
            result["state_call_ms"] = {
                "moto": sync_bench.time_state_calls(
                    lambda: DynamoVersionStore(res.state_table), n=50 if quick else 100
                ),
                "in_memory": sync_bench.time_state_calls(InMemoryVersionStore, n=200),
            }
        rss = _peak_rss(
            {
                "url": standin.url,
                "ca_file": standin.ca_file,
                "client_id": standin.client_id,
                "client_secret": standin.client_secret,
                "pid": standin.pid,
            }
        )
    finally:
        process.stop()
        progress("Salesforce stand-in stopped")
    return result, rss


def _cold_targets(cold: dict[str, Any]) -> dict[str, bool]:
    from bench.cold import TARGET_CPU_MS  # noqa: PLC0415 - after prepare_environment(), like the other bench modules

    return {
        f"cold_import_{function}": cold["import_cpu_ms"][function] < target
        for function, target in TARGET_CPU_MS.items()
    }


def _machine(load_start: tuple[float, float, float]) -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "loadavg_start": [round(v, 2) for v in load_start],
        "loadavg_end": [round(v, 2) for v in os.getloadavg()],
    }


def stamp(results: dict[str, Any], sections: list[str], command: str, measured_at: str) -> None:
    """Records when and by which command ``sections`` of ``results`` were measured (the file merges runs)."""
    for name in sections:
        results.setdefault("sections", {})[name] = {"measured_at": measured_at, "command": command}


def _previous() -> dict[str, Any]:
    from bench.report import RESULTS  # noqa: PLC0415

    return dict(json.loads(RESULTS.read_text())) if RESULTS.exists() else {}


def _cold_only(*, quick: bool) -> int:
    """The cold imports alone, put in place of the last full run's cold figures (the rest stays as measured)."""
    from bench.cold import bench_cold_imports  # noqa: PLC0415
    from bench.report import RESULTS, write  # noqa: PLC0415

    load_start = os.getloadavg()
    prepare_environment()
    cold = bench_cold_imports(runs=3 if quick else 7)
    cold["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    cold["quick"] = quick
    cold["machine"] = _machine(load_start)
    results: dict[str, Any] = json.loads(RESULTS.read_text())
    results["cold_imports"] = cold
    results["headline"]["cold_import_ms"] = cold["import_ms"]
    results["headline"]["cold_import_cpu_ms"] = cold["import_cpu_ms"]
    results["targets"] = {k: v for k, v in results["targets"].items() if not k.startswith("cold_import_")}
    results["targets"].update(_cold_targets(cold))
    stamp(
        results,
        ["cold_imports"],
        "python -m bench.run --only cold" + (" --quick" if quick else ""),
        cold["measured_at"],
    )
    write(results)
    progress(f"cold imports written to {RESULTS.relative_to(REPO_ROOT)} and docs/BENCHMARKS.md")
    print(json.dumps({"cold_import_cpu_ms": cold["import_cpu_ms"], "targets": _cold_targets(cold)}, indent=2))
    return 0


def _cost(*, quick: bool) -> dict[str, Any]:
    from bench.cost_bench import bench_cost  # noqa: PLC0415 - after prepare_environment(), like the others

    load_start = os.getloadavg()
    cost = bench_cost(quick=quick)
    cost["machine"] = _machine(load_start)
    return cost


def _cost_only(*, quick: bool) -> int:
    """The cost part alone, put in place of the last full run's ``cost`` section (the rest stays as measured)."""
    from bench.report import RESULTS, write  # noqa: PLC0415

    prepare_environment()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    cost = _cost(quick=quick)
    results: dict[str, Any] = json.loads(RESULTS.read_text())
    results["cost"] = cost
    stamp(results, ["cost"], "python -m bench.run --only cost" + (" --quick" if quick else ""), cost["measured_at"])
    write(results)
    progress(f"cost written to {RESULTS.relative_to(REPO_ROOT)} and docs/BENCHMARKS.md")
    print(json.dumps({"profiles": cost["profiles"], "planner": cost["planner"]}, indent=2))
    return 0


def _e2e_zuora(*, quick: bool) -> dict[str, Any]:
    from bench.zuora_callouts_bench import bench_e2e_zuora  # noqa: PLC0415 - after prepare_environment()

    load_start = os.getloadavg()
    result = bench_e2e_zuora(rate_per_second=15.0, seconds=15.0 if quick else 40.0, latency_ms=150)
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["quick"] = quick
    result["machine"] = _machine(load_start)
    return result


def _e2e_zuora_only(*, quick: bool) -> int:
    """The Zuora callouts' end-to-end part alone, in place of the last run's ``e2e_zuora`` section and its targets
    (the rest stays as measured)."""
    from bench.report import RESULTS, write  # noqa: PLC0415
    from bench.zuora_callouts_bench import targets as zuora_targets  # noqa: PLC0415

    prepare_environment()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    result = _e2e_zuora(quick=quick)
    results: dict[str, Any] = json.loads(RESULTS.read_text())
    results["e2e_zuora"] = result
    results["targets"].update(zuora_targets(result))
    command = "python -m bench.run --only zuora-callouts" + (" --quick" if quick else "")
    stamp(results, ["e2e_zuora"], command, result["measured_at"])
    write(results)
    progress(
        f"e2e with the Zuora stand-in's callouts written to {RESULTS.relative_to(REPO_ROOT)} and docs/BENCHMARKS.md"
    )
    print(json.dumps({k: v for k, v in result.items() if k != "batch_sizes"}, indent=2))
    return 0


def _backfill(*, quick: bool) -> dict[str, Any]:
    from bench.backfill_bench import bench_backfill  # noqa: PLC0415 - after prepare_environment(), like the others

    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="nrtsync-bench-backfill-") as workdir:
        backfill = bench_backfill(quick=quick, workdir=Path(workdir))
    backfill["machine"] = _machine(load_start)
    return backfill


def _backfill_only(*, quick: bool) -> int:
    """The backfill part alone, put in place of the last full run's ``backfill`` section (the rest stays)."""
    from bench.report import RESULTS, write  # noqa: PLC0415

    prepare_environment()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    backfill = _backfill(quick=quick)
    results: dict[str, Any] = json.loads(RESULTS.read_text())
    results["backfill"] = backfill
    command = "make bench-backfill" + (" (--quick)" if quick else "")
    stamp(results, ["backfill"], command, backfill["measured_at"])
    write(results)
    progress(f"backfill written to {RESULTS.relative_to(REPO_ROOT)} and docs/BENCHMARKS.md")
    print(json.dumps({k: backfill[k] for k in ("backfill", "reconcile", "targets")}, indent=2))
    for name, ok in backfill["targets"].items():
        print(f"{name}: {'PASS' if ok else 'FAIL'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (harness smoke test)")
    parser.add_argument("--skip-e2e", action="store_true", help="leave out the local-stack run (~1 min)")
    parser.add_argument(
        "--only",
        choices=["cold", "cost", "backfill", "zuora-callouts"],
        help="cold: only the handlers' cold imports; cost: only the AWS cost per change and the Salesforce API "
        "budget; backfill: only the 100,000-record backfill and the reconcile over an org in step; zuora-callouts: "
        "only the end-to-end latency with the Zuora stand-in's callouts; each merged into the last full run's "
        "bench/results.json",
    )
    args = parser.parse_args(argv)
    if args.only == "cold":
        return _cold_only(quick=args.quick)
    if args.only == "cost":
        return _cost_only(quick=args.quick)
    if args.only == "backfill":
        return _backfill_only(quick=args.quick)
    if args.only == "zuora-callouts":
        return _e2e_zuora_only(quick=args.quick)

    started = time.monotonic()
    load_start = os.getloadavg()
    prepare_environment()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log

    from bench.cold import bench_cold_imports  # noqa: PLC0415
    from bench.ingest_bench import bench_ingest  # noqa: PLC0415
    from bench.report import RESULTS, write  # noqa: PLC0415

    cold = bench_cold_imports(runs=3 if args.quick else 7)
    ingest = bench_ingest(requests=500 if args.quick else 2_000, moto_requests=100 if args.quick else 500)
    sync, rss = _sync_phase(args.quick)
    e2e: dict[str, Any] = {}
    e2e_zuora: dict[str, Any] = {}
    if not args.skip_e2e:
        from bench.e2e_bench import bench_e2e  # noqa: PLC0415

        e2e = bench_e2e(rate_per_second=15.0, seconds=15.0 if args.quick else 40.0, latency_ms=150)
        e2e_zuora = _e2e_zuora(quick=args.quick)
    metrics_window = _metrics_window(runs=1 if args.quick else 3)
    cost = _cost(quick=args.quick)
    # The 100,000-record backfill takes about an hour: its own target (make bench-backfill). Its last figures
    # stay in the file, with their own date and command.
    previous = _previous()

    s150 = sync["latency_150ms"]
    headline = {
        "api_calls_per_record": s150["sync_in_memory_state"]["api_calls_per_record"],
        "sync_records_per_second": s150["sync_in_memory_state"]["records_per_second"]["median"],
        "baseline_api_calls_per_record": s150["baseline"]["api_calls_per_record"],
        "baseline_records_per_second": s150["baseline"]["records_per_second"]["median"],
        "speedup": s150["speedup_of_medians"],
        "sync_records_per_second_moto_state": sync["moto_150ms"]["sync_moto_state"]["records_per_second"]["median"],
        "e2e_p50_s": e2e.get("e2e_p50_s"),
        "e2e_p90_s": e2e.get("e2e_p90_s"),
        "ingest_us_per_request": ingest["in_memory_queue"]["median_us"],
        "ingest_us_per_request_moto_sqs": ingest["moto_sqs_in_process"]["median_us"],
        "cold_import_ms": cold["import_ms"],
        "cold_import_cpu_ms": cold["import_cpu_ms"],
        "peak_rss_mb": rss["peak_rss_mb"],
    }
    targets = {
        "api_calls_per_record": headline["api_calls_per_record"] <= TARGET_CALLS_PER_RECORD,
        "speedup_vs_baseline": headline["speedup"] >= TARGET_SPEEDUP,
        "e2e_p90": None if e2e.get("e2e_p90_s") is None else e2e["e2e_p90_s"] < TARGET_E2E_P90_S,
        "e2e_p50": None if e2e.get("e2e_p50_s") is None else e2e["e2e_p50_s"] < TARGET_E2E_P50_S,
        **_cold_targets(cold),
        "peak_rss": rss["peak_rss_mb"] < TARGET_PEAK_RSS_MB,
    }
    if e2e_zuora:
        from bench.zuora_callouts_bench import targets as zuora_targets  # noqa: PLC0415

        targets.update(zuora_targets(e2e_zuora))
    results = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "run_seconds": round(time.monotonic() - started, 1),
        "machine": _machine(load_start),
        "headline": headline,
        "targets": targets,
        "sync": sync,
        "e2e": e2e,
        **({"e2e_zuora": e2e_zuora} if e2e_zuora else {}),
        "ingest": ingest,
        "cold_imports": cold,
        "peak_rss": rss,
        "metrics_window": metrics_window,
        "cost": cost,
    }
    measured = [name for name in results if name in MEASURED_BY_MAKE_BENCH]
    command = "make bench" + (" (--quick)" if args.quick else "") + (" (--skip-e2e)" if args.skip_e2e else "")
    stamp(results, measured, command, str(results["measured_at"]))
    if "backfill" in previous:
        results["backfill"] = previous["backfill"]
        results["sections"]["backfill"] = previous.get("sections", {}).get("backfill", {})
    write(results)
    progress(f"wrote {RESULTS.relative_to(REPO_ROOT)} and docs/BENCHMARKS.md in {results['run_seconds']:.0f} s")
    print(json.dumps({"headline": headline, "targets": targets}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
