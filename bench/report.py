"""``bench/results.json`` and the generated part of ``docs/BENCHMARKS.md`` (between the markers)."""

from __future__ import annotations

import json
from typing import Any

from bench.backfill_bench import TARGET_CALLS_PER_RECORD as BACKFILL_CALLS_PER_RECORD
from bench.backfill_bench import targets as backfill_targets
from bench.cold import TARGET_CPU_MS
from bench.common import REPO_ROOT

RESULTS = REPO_ROOT / "bench" / "results.json"
DOC = REPO_ROOT / "docs" / "BENCHMARKS.md"
START = "<!-- bench:generated:start (make bench rewrites this block) -->"
END = "<!-- bench:generated:end -->"


def measured_by(r: dict[str, Any], section: str) -> str:
    """The command that measured ``section`` (results.json merges runs; each section says its own)."""
    return str(r.get("sections", {}).get(section, {}).get("command", "python -m bench.run"))


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
        *_zuora_rows(r),
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


def _zuora_rows(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The same figure with the Zuora stand-in's own callouts, judged on its own against the same targets."""
    z = r.get("e2e_zuora")
    if not z:
        return []
    t = r["targets"]
    return [
        (
            "`e2e_zuora_p50_s` (change made in the Zuora stand-in -> Salesforce answered; the stand-in's callouts)",
            _fmt(z["e2e_p50_s"], " s"),
            "< 120 s (SLO)",
            _met(t.get("e2e_zuora_p50")),
        ),
        ("`e2e_zuora_p90_s`", _fmt(z["e2e_p90_s"], " s"), "< 10 s", _met(t.get("e2e_zuora_p90"))),
        (
            "`e2e_zuora_p90_s` against the SLO",
            _fmt(z["e2e_p90_s"], " s"),
            "< 600 s (SLO)",
            _met(t.get("e2e_zuora_p90_slo")),
        ),
    ]


def _zuora_detail_rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    z = r.get("e2e_zuora")
    if not z:
        return []
    s = z["standin"]
    sizes = z.get("batch_sizes") or {}
    challenges = "n/a (not in the stand-in's history)" if s["challenges"] is None else f"{s['challenges']:,}"
    preemptive = {True: "preemptive", False: "after a 401 challenge", None: "mixed"}[s["preemptive"]]
    statuses = ", ".join(f"{status}: {n:,}" for status, n in s["attempt_statuses"].items())
    return [
        (
            "e2e (Zuora callouts) changes made / written",
            f"{z['changes']} / {z['changes_written']} at {z['rate_per_second']}/s ({z['written']} written in all)",
        ),
        (
            "e2e (Zuora callouts) change made -> ingest received, P50 / P90 (the stand-in's queue, the 401 "
            "challenge round trip, the request with credentials)",
            f"{_fmt(z['delivery_ms_p50'])} / {_fmt(z['delivery_ms_p90'])} ms",
        ),
        (
            "e2e (Zuora callouts) `sync_ms` P50 / P90",
            f"{_fmt(z['sync_ms_p50'])} / {_fmt(z['sync_ms_p90'])} ms",
        ),
        (
            "e2e (Zuora callouts) the stand-in's delivery history: attempts (statuses), attempts after the first, "
            "notifications given up, 401 challenges",
            f"{s['attempts']:,} ({statuses}), {s['retries']:,}, {s['given_up']:,}, {challenges}; credentials sent "
            f"{preemptive}",
        ),
        (
            "e2e (Zuora callouts) the stand-in's sender: worker threads, deliveries/s over the run, largest backlog "
            "sampled, last delivery after the last change, kept the rate",
            f"{s['workers']}, {_fmt(s['deliveries_per_second'])}/s, {s['backlog_max']:,}, "
            f"{_fmt(round(z['seconds_until_delivered'] - z['seconds_editing'], 1), ' s')}, "
            f"{'yes' if s['keeps_rate'] else '**no**'}",
        ),
        (
            "e2e (Zuora callouts) batch sizes min / median / max, invocations",
            f"{sizes.get('min')} / {sizes.get('median')} / {sizes.get('max')}, {z.get('invocations')}",
        ),
    ]


def _zuora_measured(r: dict[str, Any]) -> list[str]:
    """When and how the Zuora callouts' figures were measured (``--only zuora-callouts`` measures them apart)."""
    z = r.get("e2e_zuora")
    if not z:
        return []
    load, s = z["machine"], z["standin"]
    tail = round(z["seconds_until_delivered"] - z["seconds_editing"], 1)
    verdict = "kept" if s["keeps_rate"] else "did not keep"
    return [
        f"The `e2e_zuora` figures were measured {z['measured_at']} by `{measured_by(r, 'e2e_zuora')}`"
        f"{' (--quick)' if z['quick'] else ''}, {z['changes']} changes over {z['seconds_editing']:g} s; load "
        f"average {load['loadavg_start'][0]:.1f} at start, {load['loadavg_end'][0]:.1f} at end. "
        f"With {s['workers']} sender threads the Zuora stand-in {verdict} {z['rate_per_second']:g} changes/s: it "
        f"delivered {s['deliveries_per_second']:g}/s over the run, its queue held up to {s['backlog_max']} "
        f"notifications, and the last callout left {tail:g} s after the last change."
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
        *_zuora_detail_rows(r),
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
        f"Measured {r['measured_at']} by `{measured_by(r, 'headline')}` on {m['nproc']} cores, Python {m['python']} "
        f"({m['platform']}); load average {m['loadavg_start'][0]:.1f} at start, {m['loadavg_end'][0]:.1f} at end; "
        f"the run took {r['run_seconds']:.0f} s.",
        *_cold_measured(r),
        *_zuora_measured(r),
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
    if "backfill" in results:
        _replace_block(DOC, BACKFILL_START, BACKFILL_END, render_backfill(results), "# Benchmarks")
    if "cost" in results:
        _replace_block(DOC, COST_START, COST_END, render_cost(results), "# Benchmarks")
        _replace_block(CAPACITY_DOC, CAPACITY_START, CAPACITY_END, render_capacity(results), "# Capacity")
    write_readme(results)


# --- cost and Salesforce API budget (issue 13): their own blocks, so that `--only cost` rewrites only them -----

COST_START = "<!-- bench:cost:start (python -m bench.run --only cost rewrites this block) -->"
COST_END = "<!-- bench:cost:end -->"
CAPACITY_DOC = REPO_ROOT / "docs" / "CAPACITY.md"
CAPACITY_START = "<!-- bench:capacity:start (python -m bench.run --only cost rewrites this block) -->"
CAPACITY_END = "<!-- bench:capacity:end -->"
CURVE_RATES = (0.01, 0.1, 1.0, 10.0, 100.0, 500.0, 1000.0)


def _usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def _cost_rows(cost: dict[str, Any]) -> list[str]:
    profiles = cost["profiles"]
    services = sorted({s for p in profiles for s in p["usd_per_month_by_service"]})
    lines = [
        "| $ per month, by service | " + " | ".join(p["profile"].replace("_", " ") for p in profiles) + " |",
        "|---|" + "---|" * len(profiles),
    ]
    for service in services:
        cells = []
        for p in profiles:
            total = p["usd_per_month_by_service"].get(service, 0.0)
            fixed = p["usd_per_month_fixed_by_service"].get(service, 0.0)
            cells.append(_usd(total) + (f" ({_usd(fixed)} fixed)" if fixed and fixed < total - 0.005 else ""))
        lines.append(f"| {service} | " + " | ".join(cells) + " |")
    lines += [
        "| **total per month** | " + " | ".join(f"**{_usd(p['usd_per_month'])}**" for p in profiles) + " |",
        "| changes per month | " + " | ".join(f"{p['changes_per_month']:,}" for p in profiles) + " |",
        "| **$ per million changes** (all in) | "
        + " | ".join(f"**{_usd(p['usd_per_million_changes'])}**" for p in profiles)
        + " |",
        "| $ per million changes, variable part only | "
        + " | ".join(_usd(p["usd_per_million_changes_variable_only"]) for p in profiles)
        + " |",
        "| records per sync invocation (modelled) | "
        + " | ".join(f"{p['modelled_batch_size']:g}" for p in profiles)
        + " |",
    ]
    return lines


def _usage_rows(usage: dict[str, Any]) -> list[str]:
    names = sorted({*usage["per_change"], *usage["per_sync_record"], *usage["per_sync_invocation"]})
    lines = ["| Quantity | per change (front, ingest) | per record synced | per sync invocation |", "|---|---|---|---|"]
    for name in names:
        cells = [usage[part].get(name) for part in ("per_change", "per_sync_record", "per_sync_invocation")]
        lines.append(f"| `{name}` | " + " | ".join("" if c is None else f"{c:,.4g}" for c in cells) + " |")
    return lines


def _budget_rows(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| BatchingWindowSeconds | callouts/s | changes | Salesforce API calls | calls per change | "
        "records per invocation (measured / model, 1 poller) | e2e P50 | e2e P90 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['window_seconds']} | {r['rate_per_second']:g} | {r['changes']} | {r['salesforce_api_calls']} | "
            f"{r['api_calls_per_change']:.3f} | {r['mean_batch_size']} / {r['modelled_batch_size_one_poller']} | "
            f"{_fmt(r['e2e_p50_s'], ' s')} | {_fmt(r['e2e_p90_s'], ' s')} |"
        )
    return lines


def _profile_chart(cost: dict[str, Any]) -> list[str]:
    business = next(p for p in cost["profiles"] if p["profile"] == "business_day")
    items = sorted(business["usd_per_month_by_service"].items(), key=lambda kv: -kv[1])
    return [
        "```mermaid",
        "xychart-beta",
        '    title "Business day profile: $ per month by service"',
        "    x-axis [" + ", ".join(f'"{name}"' for name, _ in items) + "]",
        '    y-axis "USD per month"',
        "    bar [" + ", ".join(f"{value:.2f}" for _, value in items) + "]",
        "```",
    ]


def render_cost(r: dict[str, Any]) -> str:
    cost = r["cost"]
    measurement = cost["measurement"]
    fixed = measurement["usage"]["fixed_per_month"]
    defaults = cost["template_defaults"]
    load = cost.get("machine", {})
    planner = cost["planner"]
    lines = [
        COST_START,
        "",
        f"Measured {cost['measured_at']} (`{measured_by(r, 'cost')}`{', --quick' if cost['quick'] else ''}"
        + (
            f", load average {load['loadavg_start'][0]:.1f} at start, {load['loadavg_end'][0]:.1f} at end"
            if load
            else ""
        )
        + f"); prices: `{cost['prices']['file']}`, {cost['prices']['region']}, as of {cost['prices']['as_of']}. "
        f"Template defaults: BatchingWindowSeconds {defaults['BatchingWindowSeconds']:g}, "
        f"SyncMaxConcurrency {defaults['SyncMaxConcurrency']}.",
        "",
        *_cost_rows(cost),
        "",
        *_profile_chart(cost),
        "",
        f"Fixed items a month: {fixed['custom_metrics']:.0f} custom metrics, {fixed['alarm_metrics']:.0f} alarm "
        f"metrics, {fixed['dashboards']:.0f} dashboard, {fixed['secrets']:.0f} secrets; the scheduled runs ("
        + ", ".join(
            f"{name} {per_hour:g} an hour" for name, per_hour in measurement["usage"]["scheduled_runs_per_hour"].items()
        )
        + "); the event source's empty long polls.",
        "",
        "<details><summary>Usage measured per change, per record and per sync invocation</summary>",
        "",
        f"{measurement['changes']} callouts in two phases ("
        + ", ".join(
            f"{p['name']}: {p['rate_per_second']:g}/s, {p['mean_batch_size']} records per invocation"
            for p in measurement["phases"]
        )
        + f"), {measurement['written']} written; sync invocation wall time {measurement['sync_seconds_fixed']:.3f} s "
        f"+ {measurement['sync_seconds_per_record'] * 1000:.1f} ms per record (moto, Salesforce stand-in at "
        f"{measurement['salesforce_latency_ms']} ms).",
        "",
        *_usage_rows(measurement["usage"]),
        "",
        "Per scheduled run: "
        + "; ".join(
            f"{name}: " + ", ".join(f"`{k}` {v:,.4g}" for k, v in sorted(run.items()) if v)
            for name, run in measurement["usage"]["per_scheduled_run"].items()
        )
        + ".",
        "",
        "</details>",
        "",
        "**Salesforce API budget** (local stack, one poller, Salesforce stand-in at "
        f"{measurement['salesforce_latency_ms']} ms a call):",
        "",
        *_budget_rows(cost["salesforce_budget"]),
        "",
        f"Planner constants (`nrtsync_cli/plan.py`, `MEASURED`): base P50 {planner['base_p50_s']} s, base P90 "
        f"{planner['base_p90_s']} s, sync {planner['sync_fixed_s']} s + {planner['sync_per_record_s']} s per record.",
        "",
        COST_END,
    ]
    return "\n".join(lines)


def render_capacity(r: dict[str, Any]) -> str:
    """Cost per million changes and latency against a steady rate, from the measured usage and the planner; the
    concurrency each rate needs (the smallest of the planner's choices that keeps up)."""
    from bench.cost_model import Prices, Profile, UnitUsage, monthly_cost  # noqa: PLC0415
    from nrtsync_cli.plan import (  # noqa: PLC0415
        CONCURRENCIES,
        Measured,
        batch_size,
        event_source_pollers,
        latency_seconds,
        throughput,
    )

    cost = r["cost"]
    prices = Prices.load()
    usage = UnitUsage.from_dict(cost["measurement"]["usage"])
    window = float(cost["template_defaults"]["BatchingWindowSeconds"])
    p = cost["planner"]
    measured = Measured(p["base_p50_s"], p["base_p90_s"], p["sync_fixed_s"], p["sync_per_record_s"], "")
    rows, per_million, p90s = [], [], []
    for rate in CURVE_RATES:
        concurrency = next(
            (
                c
                for c in CONCURRENCIES
                if throughput(c, batch_size(rate, window, event_source_pollers(c)), measured) >= rate
            ),
            None,
        )
        month = monthly_cost(
            Profile(f"{rate}", "", rate * 3600 * prices.hours_per_month, rate),
            usage,
            prices,
            window_seconds=window,
            concurrency=concurrency or max(CONCURRENCIES),
        )
        if concurrency is None:
            latency = "grows without bound (the queue backs up)"
            p90s.append(0.0)
        else:
            p50, p90 = latency_seconds(rate, window, event_source_pollers(concurrency), measured)
            latency = f"{p50:.1f} s | {p90:.1f} s"
            p90s.append(p90)
        rows.append(
            f"| {rate:g} | {month.changes:,.0f} | {concurrency or f'> {max(CONCURRENCIES)}'} | {_usd(month.total)} | "
            f"{_usd(month.per_million_changes)} | {_usd(month.variable_per_million_changes)} | "
            f"{month.batch_size:.1f} | {latency} |"
        )
        per_million.append(month.per_million_changes)
    labels = ", ".join(f'"{rate:g}/s"' for rate in CURVE_RATES)
    return "\n".join(
        [
            CAPACITY_START,
            "",
            f"From the measured usage of {cost['measured_at']} and the prices of {cost['prices']['as_of']}: a steady "
            f"rate all month, BatchingWindowSeconds {window:g}, and the smallest SyncMaxConcurrency that keeps up "
            "(the sync's duration measured on moto: an upper bound).",
            "",
            "| changes/s | changes a month | SyncMaxConcurrency needed | $ a month | $ per million (all in) | "
            "$ per million (variable) | records per invocation | P50 | P90 |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "```mermaid",
            "xychart-beta",
            '    title "$ per million changes (all in) against a steady rate"',
            f"    x-axis [{labels}]",
            '    y-axis "USD per million changes"',
            "    bar [" + ", ".join(f"{v:.2f}" for v in per_million) + "]",
            "```",
            "",
            "```mermaid",
            "xychart-beta",
            '    title "Expected end-to-end P90 (s) against a steady rate"',
            f"    x-axis [{labels}]",
            '    y-axis "seconds"',
            "    line [" + ", ".join(f"{v:.2f}" for v in p90s) + "]",
            "```",
            "",
            CAPACITY_END,
        ]
    )


def _replace_block(path: Any, start: str, end: str, block: str, heading: str) -> None:
    text = path.read_text() if path.exists() else f"{heading}\n\n{start}\n{end}\n"
    if start not in text or end not in text:
        text = text.rstrip() + f"\n\n{start}\n{end}\n"
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    path.write_text(before + block + after)


# --- backfill and reconcile over an org in step (issue 12): their own block, rewritten by `--only backfill` ------

BACKFILL_START = "<!-- bench:backfill:start (python -m bench.run --only backfill rewrites this block) -->"
BACKFILL_END = "<!-- bench:backfill:end -->"


# The backfill's target is judged on the backfill's own records: live callouts sharing its batches would
# flatter it (a blended figure is shown beside it, never instead).
BACKFILL_RECORDS_PER_CALL_TARGET = round(1 / BACKFILL_CALLS_PER_RECORD)


def _pass(ok: bool) -> str:
    return "**PASS**" if ok else "**FAIL**"


def backfill_target_met(b: dict[str, Any]) -> bool:
    """Judged again from the figures (not the stored verdict), on the backfill's own records."""
    return backfill_targets(b)["backfill_api_calls_per_record"]


def render_backfill(r: dict[str, Any]) -> str:
    """The backfill's figures, the live callouts beside it, and the reconcile over the org in step."""
    b = r["backfill"]
    fill, rec, alone, during = b["backfill"], b["reconcile"], b["live_alone"], b["live_during_backfill"]
    machine = b["machine"]
    calls, written = fill["salesforce_api_calls"], fill["records"] + during["written"]
    zuora = ", ".join(f"{k} {v:,}" for k, v in sorted(fill["zuora_calls"].items()) if v)
    pauses = ", ".join(f"{k}: {v}" for k, v in sorted(fill["pauses"].items())) or "none"
    mix = ", ".join(f"{k} {v:,}" for k, v in fill["records_by_object"].items())
    quick = ", --quick" if b["quick"] else ""
    lines = [
        BACKFILL_START,
        "",
        f"Measured {b['measured_at']} (`{measured_by(r, 'backfill')}`{quick}), {machine['nproc']} cores, "
        f"load average {machine['loadavg_start'][0]} at the start and {machine['loadavg_end'][0]} at the end; "
        f"Salesforce stand-in at {b['salesforce_latency_ms']} ms a call, the template's batching window, one "
        f"poller; backfill backlog bound {fill['max_queue_backlog']:,}, wait {fill['wait_seconds']} s.",
        "",
        "| figure | measured | target | met |",
        "|---|---|---|---|",
        f"| records backfilled ({mix}) | {fill['records']:,}, {fill['in_salesforce']:,} in Salesforce "
        f"({fill['spot_checked']} spot-checked field by field, {len(fill['spot_check_differences'])} differing) "
        "| all | |",
        f"| wall time, run created to queue drained | {_fmt(fill['seconds_until_drained'], ' s')} "
        f"(reading done after {_fmt(fill['seconds_reading'], ' s')}) | | |",
        f"| records/s | {_fmt(fill['records_per_second'])} | | |",
        f"| Salesforce API calls (the stand-in's count) per backfilled record ({fill['records']:,}) | 1 per "
        f"{_fmt(fill['records_per_api_call'])} | 1 per {BACKFILL_RECORDS_PER_CALL_TARGET:.0f} or better "
        f"| {_pass(backfill_target_met(b))} |",
        f"| beside it, blended: per record written ({written:,}: the backfill's and the {during['written']:,} "
        f"live callouts' that share its batches) | {calls:,} calls = 1 per "
        f"{_fmt(written / calls if calls else None)} | (not a target) | |",
        f"| Zuora calls | {zuora} | | |",
        f"| sync invocations, batch size P50 / P90 | {fill['sync_invocations']:,}, {fill['batch_size_p50']} / "
        f"{fill['batch_size_p90']} | | |",
        f"| backfill pauses by reason (steps that waited) | {pauses}; {_fmt(fill['waited_s'], ' s')} waited | | |",
        f"| live callouts ({_fmt(alone['rate_per_second'])}/s) e2e P50 / P90, no backfill | "
        f"{_fmt(alone['e2e_p50_s'], ' s')} / {_fmt(alone['e2e_p90_s'], ' s')} ({alone['written']} of "
        f"{alone['callouts']} written) | | |",
        f"| the same during the backfill | {_fmt(during['e2e_p50_s'], ' s')} / {_fmt(during['e2e_p90_s'], ' s')}"
        f" (max {_fmt(during['e2e_max_s'], ' s')}; {during['written']} of {during['callouts']} written) | | |",
        f"| reconcile over the org in step: records read, changes queued | {rec['read']:,}, {rec['queued']} "
        f"({rec['runs']} run(s)) | read all, queue 0 | |",
        f"| reconcile: Salesforce API calls | {rec['salesforce_api_calls']} | 0 "
        f"| {_pass(backfill_targets(b)['reconcile_in_step_api_calls'])} |",
        f"| reconcile: wall time, records read/s | {_fmt(rec['seconds'], ' s')}, "
        f"{_fmt(rec['records_read_per_second'])} | | |",
        "",
        BACKFILL_END,
    ]
    return "\n".join(lines)


# --- the README's figures: a block generated from the same results, so the README never quotes a stale one -----

README = REPO_ROOT / "README.md"
README_START = "<!-- bench:readme:start (generated from bench/results.json: python -m bench.report) -->"
README_END = "<!-- bench:readme:end -->"


def render_readme(r: dict[str, Any]) -> str:
    """The headline figures with their targets, each judged on its own figure, and when they were measured."""
    h, t = r["headline"], r["targets"]
    cpu = r["cold_imports"]["import_cpu_ms"]
    imports = ", ".join(f"{name} {ms:.0f} ms" for name, ms in cpu.items())
    targets = ", ".join(f"{name} {ms:.0f}" for name, ms in TARGET_CPU_MS.items())
    lines = [
        README_START,
        "",
        "| Figure (local stack, Salesforce stand-in at 150 ms a call) | Measured | Target | Met |",
        "|---|---|---|---|",
        f"| Salesforce API calls, full mixed batches | 1 per {1 / h['api_calls_per_record']:.0f} records "
        f"| 1 per 150 or better | {_pass(bool(t['api_calls_per_record']))} |",
        f"| records/s against a one-call-per-record connector | {h['speedup']:.0f}x | 10x or more "
        f"| {_pass(bool(t['speedup_vs_baseline']))} |",
        f"| end-to-end latency P50 / P90 | {h['e2e_p50_s']:.1f} s / {h['e2e_p90_s']:.1f} s | 120 s / 600 s (the SLO) "
        f"| {_pass(h['e2e_p50_s'] < 120 and h['e2e_p90_s'] < 600)} |",
        f"| peak memory, one 200-record invocation | {h['peak_rss_mb']:.0f} MB | under 128 MB "
        f"| {_pass(bool(t['peak_rss']))} |",
        f"| cold import, CPU time (median) | {imports} | under {targets} ms "
        f"| {_pass(all(v for k, v in t.items() if k.startswith('cold_import_')))} |",
    ]
    if "backfill" in r:
        b = r["backfill"]
        fill, rec = b["backfill"], b["reconcile"]
        lines += [
            f"| initial load of {fill['records']:,} records: Salesforce API calls | 1 per "
            f"{fill['records_per_api_call']:.1f} backfilled records ({fill['records_per_second']:.1f} records/s) "
            f"| 1 per {BACKFILL_RECORDS_PER_CALL_TARGET:.0f} or better | {_pass(backfill_target_met(b))} |",
            f"| reconcile over that org, in step | {rec['queued']} changes queued, {rec['salesforce_api_calls']} "
            f"Salesforce API calls | 0 calls | {_pass(backfill_targets(b)['reconcile_in_step_api_calls'])} |",
        ]
    measured = f"the sync, latency, memory and imports {r['measured_at'][:10]} (`{measured_by(r, 'headline')}`)"
    if "backfill" in r:
        measured += f", the initial load {r['backfill']['measured_at'][:10]} (`{measured_by(r, 'backfill')}`)"
    lines += ["", f"Measured on {r['machine']['nproc']} CPU cores: {measured}.", "", README_END]
    return "\n".join(lines)


def write_readme(results: dict[str, Any]) -> None:
    """The README's figures and METRICS.md's table: blocks generated from the same results."""
    _replace_block(README, README_START, README_END, render_readme(results), "# nrtsync")
    if "metrics_window" in results:
        _replace_block(METRICS_DOC, METRICS_START, METRICS_END, render_metrics_window(results), "# Metrics")


# --- METRICS.md's benchmark table: the metrics window's figures from the same results -----------------------

METRICS_DOC = REPO_ROOT / "docs" / "METRICS.md"
METRICS_START = "<!-- bench:metrics-window:start (generated from bench/results.json: python -m bench.report) -->"
METRICS_END = "<!-- bench:metrics-window:end -->"


def render_metrics_window(r: dict[str, Any]) -> str:
    """The metrics function's 7-day window over 1,000,000 records a day: both kinds of run, as measured."""
    w = r["metrics_window"]
    rows = []
    for label, run in (
        ("steady (all hours rolled)", w["steady_run"]),
        ("the run that rolls an hour", w["run_that_rolls_an_hour"]),
    ):
        rows.append(
            f"| {label} | {run['median_s']} s | {run['min_s']}..{run['max_s']} s | {run['peak_traced_mib']} MiB "
            f"| {run['rollup_items']:,} rollups + {run['minute_items']:,} minute items "
            f"({run['minute_records']:,} values) "
            f"| {run['queries']} | {run['put_metric_data_calls']} ({run['metric_data']:,} data) |"
        )
    section = r.get("sections", {}).get("metrics_window", {})
    return "\n".join(
        [
            METRICS_START,
            "",
            f"Measured {section.get('measured_at', r['measured_at'])} by `{measured_by(r, 'metrics_window')}`, "
            f"Python {w['python']}, {r['machine']['nproc']} CPU cores, median of the runs:",
            "",
            "| run | median | min..max | peak traced memory | data read | DynamoDB Queries | PutMetricData calls |",
            "|---|---|---|---|---|---|---|",
            *rows,
            "",
            METRICS_END,
        ]
    )


if __name__ == "__main__":
    # Re-render every generated block from bench/results.json, without measuring anything.
    existing = json.loads(RESULTS.read_text())
    write(existing)
    write_readme(existing)
