"""``bench/results.json`` and the generated part of ``docs/BENCHMARKS.md`` (between the markers)."""

from __future__ import annotations

import json
from typing import Any

from bench.cold import TARGET_CPU_MS
from bench.common import REPO_ROOT

RESULTS = REPO_ROOT / "bench" / "results.json"
DOC = REPO_ROOT / "docs" / "BENCHMARKS.md"
START = "<!-- bench:generated:start (make bench rewrites this block) -->"
END = "<!-- bench:generated:end -->"


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**yes**" if ok else "**no**")


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        text = f"{value:,.4f}" if abs(value) < 0.1 else f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{text}{unit}"


def _cold_rows(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    cpu = r["cold_imports"]["import_cpu_ms"]
    rows = []
    for function, ms in cpu.items():
        target = TARGET_CPU_MS.get(function)
        rows.append(
            (
                f"`cold_import_cpu_ms` {function} (median CPU time of `import app`)",
                _fmt(ms, " ms"),
                f"< {target:.0f} ms" if target else "",
                _met(r["targets"].get(f"cold_import_{function}")) if target else "",
            )
        )
    return rows


def headline_rows(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    h = r["headline"]
    t = r["targets"]
    return [
        (
            "`api_calls_per_record` (full batches of 200, 4 object types)",
            _fmt(h["api_calls_per_record"]) + f" (1 per {1 / h['api_calls_per_record']:.0f})",
            "<= 1/150 (0.0067)",
            _met(t["api_calls_per_record"]),
        ),
        (
            "api calls per record, 200 records of one object type",
            _fmt(r["sync"]["single_type_batch"]["api_calls_per_record"]),
            "(same target)",
            _met(r["sync"]["single_type_batch"]["api_calls_per_record"] <= 1 / 150),
        ),
        ("`baseline_api_calls_per_record`", _fmt(h["baseline_api_calls_per_record"]), "", ""),
        (
            "`sync_records_per_second` @150 ms (in-memory state)",
            _fmt(h["sync_records_per_second"]),
            "",
            "",
        ),
        ("`baseline_records_per_second` @150 ms", _fmt(h["baseline_records_per_second"]), "", ""),
        (
            "sync / baseline records/s @150 ms (same run)",
            _fmt(h["speedup"], "x"),
            ">= 10x",
            _met(t["speedup_vs_baseline"]),
        ),
        (
            "sync / baseline records/s @0 ms (same run)",
            _fmt(r["sync"]["latency_0ms"].get("speedup_of_medians"), "x"),
            "",
            "",
        ),
        (
            "`e2e_p50_s` (callout sent -> Salesforce answered)",
            _fmt(h["e2e_p50_s"], " s"),
            "< 120 s (SLO)",
            _met(t["e2e_p50"]),
        ),
        ("`e2e_p90_s`", _fmt(h["e2e_p90_s"], " s"), "< 10 s", _met(t["e2e_p90"])),
        ("`ingest_us_per_request` (median, in-memory queue)", _fmt(h["ingest_us_per_request"], " µs"), "", ""),
        *_cold_rows(r),
        (
            "`peak_rss_mb` (one 200-record sync invocation)",
            _fmt(h["peak_rss_mb"], " MB"),
            "< 128 MB",
            _met(t["peak_rss"]),
        ),
        (
            "metrics window, 7 days of 1 M records/day (median run)",
            _fmt(r["metrics_window"]["steady_run"]["median_s"], " s") if r.get("metrics_window") else "n/a",
            "",
            "",
        ),
    ]


def detail_rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    s150, s0 = r["sync"]["latency_150ms"], r["sync"]["latency_0ms"]
    moto = r["sync"].get("moto_150ms", {}).get("sync_moto_state", {})
    e2e = r.get("e2e", {})
    ing = r["ingest"]
    cold = r["cold_imports"]
    rss = r["peak_rss"]
    sizes = e2e.get("batch_sizes") or {}
    rows = [
        (
            "sync s/batch of 200 @150 ms, in-memory state (median)",
            _fmt(s150["sync_in_memory_state"]["seconds_per_batch"]["median"], " s"),
        ),
        (
            "sync s/batch of 200 @150 ms, moto state/history (median)",
            _fmt((moto.get("seconds_per_batch") or {}).get("median"), " s"),
        ),
        (
            "sync records/s @150 ms, moto state/history (median)",
            _fmt((moto.get("records_per_second") or {}).get("median")),
        ),
        (
            "baseline s for the same 200 records @150 ms (median)",
            _fmt(s150["baseline"]["seconds_per_batch"]["median"], " s"),
        ),
        (
            "sync records/s @0 ms, in-memory state (median)",
            _fmt(s0["sync_in_memory_state"]["records_per_second"]["median"]),
        ),
        ("baseline records/s @0 ms (median)", _fmt(s0["baseline"]["records_per_second"]["median"])),
        (
            "one state call (claim or commit), moto server, sequential (median)",
            _fmt(r["sync"].get("state_call_ms", {}).get("moto"), " ms"),
        ),
        ("one state call, in-memory (median)", _fmt(r["sync"].get("state_call_ms", {}).get("in_memory"), " ms")),
        (
            "experiment: one shared thread pool instead of a pool per call, @0 ms",
            _fmt(r["sync"].get("pool_experiment", {}).get("speedup"), "x records/s"),
        ),
        (
            "e2e callouts sent / written",
            f"{e2e.get('callouts', 'n/a')} / {e2e.get('written', 'n/a')} at {e2e.get('rate_per_second', 'n/a')}/s",
        ),
        (
            "e2e `sync_ms` P50 / P90 (ingest received -> Salesforce answered)",
            f"{_fmt(e2e.get('sync_ms_p50'))} / {_fmt(e2e.get('sync_ms_p90'))} ms",
        ),
        (
            "e2e batch sizes min / median / max, invocations",
            f"{sizes.get('min')} / {sizes.get('median')} / {sizes.get('max')}, {e2e.get('invocations')}",
        ),
        (
            "e2e callout HTTP round trip P50 / P90 (local front + ingest + moto SQS)",
            f"{_fmt(e2e.get('callout_http_ms_p50'))} / {_fmt(e2e.get('callout_http_ms_p90'))} ms",
        ),
        ("ingest per request, P90 (in-memory queue)", _fmt(ing["in_memory_queue"]["p90_us"], " µs")),
        ("ingest per request, median, moto in-process SQS", _fmt(ing["moto_sqs_in_process"]["median_us"], " µs")),
        ("fresh interpreter start (no imports of ours)", _fmt(cold["interpreter_start_ms"], " ms")),
        (
            f"cold import wall time {' / '.join(cold['import_ms'])} (median; moves with the machine's load)",
            " / ".join(_fmt(ms, " ms") for ms in cold["import_ms"].values()),
        ),
        (
            f"first invocation's build of the service, CPU {' / '.join(cold['first_build_cpu_ms'])} "
            "(median; after the import, before any network call)",
            " / ".join(_fmt(ms, " ms") for ms in cold["first_build_cpu_ms"].values()),
        ),
        (
            "RSS: interpreter start / after imports / peak",
            f"{rss['interpreter_start_mb']} / {rss['after_imports_mb']} / {rss['peak_rss_mb']} MB",
        ),
    ]
    for function, top in cold["top_imports"].items():
        rows.append((f"top imports (self time) of {function}", ", ".join(f"{t['package']} {t['ms']} ms" for t in top)))
    return rows


def _cold_measured(r: dict[str, Any]) -> list[str]:
    """When the cold imports were measured apart (``--only cold``), when and under which load."""
    cold = r["cold_imports"]
    if "measured_at" not in cold:
        return []
    load = cold["machine"]
    return [
        "The cold imports were measured apart (`python -m bench.run --only cold"
        f"{' --quick' if cold['quick'] else ''}`) "
        f"at {cold['measured_at']}, {cold['runs']} runs each; load average {load['loadavg_start'][0]:.1f} at start, "
        f"{load['loadavg_end'][0]:.1f} at end."
    ]


def render(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        START,
        "",
        f"Measured {r['measured_at']} on {m['nproc']} cores, Python {m['python']} ({m['platform']}); "
        f"load average {m['loadavg_start'][0]:.1f} at start, {m['loadavg_end'][0]:.1f} at end; "
        f"`make bench` took {r['run_seconds']:.0f} s.",
        *_cold_measured(r),
        "",
        "| Figure | Value | Target | Met? |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in headline_rows(r)),
        "",
        "<details><summary>More figures from the same run</summary>",
        "",
        "| Figure | Value |",
        "|---|---|",
        *(f"| {a} | {b} |" for a, b in detail_rows(r)),
        "",
        "</details>",
        "",
        END,
    ]
    return "\n".join(lines)


def write(results: dict[str, Any]) -> None:
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    block = render(results)
    text = DOC.read_text() if DOC.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    if START not in text or END not in text:
        text = text.rstrip() + f"\n\n{START}\n{END}\n"
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    DOC.write_text(before + block + after)
