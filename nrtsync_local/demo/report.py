"""The demo's report: the callouts' attempts per phase from the Zuora stand-in's delivery history, the Sync
History and failure list as the operator CLI prints them, record trails, latency percentiles by Zuora's
percentile rule, and the Salesforce API calls used."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from nrtsync.adapters.aws.tables import minute_pk, plain_item
from nrtsync_cli.render import print_table
from nrtsync_local.demo.changes import Attempt
from nrtsync_local.demo.steps import DemoStream
from nrtsync_local.stack import LocalDeployment
from nrtsync_local.template import load_template, parameter_defaults
from nrtsync_local.zuora.callouts import SENDER_THREADS as ZUORA_SENDER_THREADS

PERCENTILES = (50, 90)


def section(out: TextIO, title: str) -> None:
    print(f"\n== {title} " + "=" * max(3, 100 - len(title)), file=out)


def _cli(args: list[str], stack: LocalDeployment, out: TextIO) -> int:
    from nrtsync_cli.cli import run  # noqa: PLC0415 - the layer, imported once the stack set the environment

    buffer = io.StringIO()
    code = run(args, operations=stack.operations(), out=buffer)
    print(f"$ nrtsync --local {' '.join(args)}", file=out)
    _print_indented(buffer, out)
    return code


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], out: TextIO) -> None:
    """The CLI's table, indented under the section like the CLI output the report quotes."""
    buffer = io.StringIO()
    print_table(rows, columns, buffer)
    _print_indented(buffer, out)


def _print_indented(buffer: io.StringIO, out: TextIO) -> None:
    """What was printed into ``buffer``, indented under the section heading (without the table's padding)."""
    for line in buffer.getvalue().splitlines():
        print(f"  {line}".rstrip(), file=out)


def history_latencies(stack: LocalDeployment, since: datetime) -> dict[str, list[int]]:
    """Every written record's sync and end-to-end latency (ms) since ``since``, from the history's minute items."""
    ddb = stack.client("dynamodb")
    latencies: dict[str, list[int]] = {"sync_ms": [], "e2e_ms": []}
    minute = since.replace(second=0, microsecond=0)
    end = datetime.now(UTC)
    while minute <= end:
        kwargs: dict[str, Any] = {
            "TableName": stack.resources.history_table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": minute_pk(minute)}},
        }
        while True:
            page = ddb.query(**kwargs)
            for item in page.get("Items", []):
                plain = plain_item(item)
                for name, values in latencies.items():
                    values.extend(int(v) for v in plain.get(name, []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        minute += timedelta(minutes=1)
    return latencies


def _ms(value: int | None) -> str:
    return "-" if value is None else f"{value:,} ms"


def report(
    stack: LocalDeployment, stream: DemoStream, attempts: Sequence[Attempt], since: datetime, out: TextIO
) -> dict[str, Any]:
    """Prints the demo's report; returns the figures it printed (for the tests)."""
    from nrtsync.domain.latency import percentiles  # noqa: PLC0415

    figures: dict[str, Any] = {"callouts": callout_figures(attempts)}
    section(out, "Callouts (the Zuora stand-in's delivery history: one row per attempt, like Zuora's)")
    _callouts(stream, attempts, out)

    section(out, "Sync History: sessions (newest first)")
    _cli(["sessions", "--since", "15m", "--limit", "500"], stack, out)
    sessions = stack.operations().sessions(since=timedelta(minutes=15), limit=1000)
    totals = Counter[str]()
    for session in sessions:
        for name in ("records_in", "written", "superseded", "duplicates", "stale_skipped", "waiting", "failed"):
            totals[name] += int(session.get(name) or 0)
    figures["outcomes"] = dict(totals)
    print(
        f"\n  {len(sessions)} sessions, {totals['records_in']} changes in: {totals['written']} written, "
        f"{totals['superseded']} superseded, {totals['duplicates']} duplicate, {totals['stale_skipped']} stale, "
        f"{totals['waiting']} waiting (then retried), {totals['failed']} failed",
        file=out,
    )

    section(out, "Failure list")
    _cli(["failures"], stack, out)

    for key, why in (
        ("stale", "an older change delivered after the newer one was written: skipped as stale"),
        ("early_child", "its callout came before its account's: waited for the parent, then written with the lookup"),
        ("row_lock", "UNABLE_TO_LOCK_ROW once (injected): waited, then written"),
        ("linked", "no CRM link: held (no call), then written when its CrmId arrived, its held subscription too"),
        ("amended", "amended: version 2 (a new Id) written; version 1's later Expired update never overwrites it"),
    ):
        object_type, record_id = stream.highlights[key]
        section(out, f"Trail of {object_type} {record_id}")
        print(f"  ({why})", file=out)
        _cli(["trail", object_type, record_id], stack, out)

    section(out, "Latency of every written record, P50/P90 by Zuora's percentile rule (sort, skip p%, take the next)")
    latencies = history_latencies(stack, since)
    latency_rows: list[dict[str, Any]] = []
    labels = {
        "sync_ms": "sync (callout received -> Salesforce accepted)",
        "e2e_ms": "end-to-end (Zuora updatedDate -> Salesforce)",
    }
    for name, values in latencies.items():
        result = percentiles(values, PERCENTILES)
        figures[name] = result
        latency_rows.append(
            {"latency": labels[name], "records": len(values), "p50": _ms(result[50]), "p90": _ms(result[90])}
        )
    _table(latency_rows, [("latency", "latency"), ("records", "records"), ("p50", "P50"), ("p90", "P90")], out)
    defaults = parameter_defaults(load_template())
    print(
        f"  The product's objectives: P50 under {defaults['LatencyP50SloSeconds']} s, P90 under "
        f"{defaults['LatencyP90SloSeconds']} s (Zuora's connector promises 2 and 10 minutes).",
        file=out,
    )
    print(
        f"  End-to-end includes Zuora's own delivery: the stand-in sends {ZUORA_SENDER_THREADS} callouts at a time "
        "(Zuora publishes no figure), each after a 401 challenge, and a faulted one only after its retry interval; "
        "the sync row is this product's part.",
        file=out,
    )

    section(out, "Salesforce API calls")
    standin = stack.standin
    stats = standin.stats() if standin is not None else {}
    per_call = [int(n) for n in stats.get("records_per_call", [])]
    accepted = sum(1 for a in attempts if a.reached_endpoint and (a.status == 200 or a.endpoint_status == 200))
    figures["api_calls"] = int(stats.get("api_calls", 0))
    figures["written"] = totals["written"]
    print(
        f"  {figures['api_calls']} API calls (each up to five sObject Collections of 200 records; OAuth token "
        f"requests not counted: {stats.get('token_requests', 0)}) for {totals['written']} records written.\n"
        f"  A connector calling Salesforce once per callout would have made {accepted} calls (one per callout the "
        f"endpoint accepted), or {totals['written']} for the writes alone.\n"
        f"  Records per call: max {max(per_call, default=0)}, mean {sum(per_call) / max(1, len(per_call)):.1f}. "
        f"Faults the stand-in injected: {stats.get('injected_faults', 0)} (HTTP 503, retried within the call). "
        f"Org API usage: {stats.get('api_used', 0)}/{stats.get('api_limit', 0)}.",
        file=out,
    )
    return figures


def callout_figures(attempts: Sequence[Attempt]) -> dict[int, Counter[str]]:
    """Per phase: ``notifications``, ``attempts``, ``retries``, ``challenged`` (401 first), ``delivered``,
    ``given_up``, ``no_answer`` and ``answer_lost`` (the stand-in's faults), ``refused`` (a final non-200)."""
    figures: dict[int, Counter[str]] = {}
    for attempt in attempts:
        counts = figures.setdefault(attempt.phase, Counter())
        counts["attempts"] += 1
        counts["notifications"] += attempt.attempt == 1
        counts["retries"] += attempt.attempt > 1
        counts["challenged"] += attempt.challenged
        counts["delivered"] += attempt.delivered
        counts["given_up"] += attempt.given_up
        counts["no_answer"] += attempt.fault == "no_answer"
        counts["answer_lost"] += attempt.fault == "answer_lost"
        counts["refused"] += attempt.status is not None and attempt.status != 200
    return figures


def _callouts(stream: DemoStream, attempts: Sequence[Attempt], out: TextIO) -> None:
    figures = callout_figures(attempts)
    rows = []
    for number, phase in enumerate(stream.phases, 1):
        counts = figures.get(number, Counter())
        rows.append(
            {
                "phase": f"{number}. {phase.title[:58]}",
                "changes": len(phase.steps),
                **{name: counts[name] for name in ("notifications", "attempts", "retries", "challenged")},
                "delivered": counts["delivered"],
                "faults": f"{counts['no_answer']} / {counts['answer_lost']}",
                "given_up": counts["given_up"],
            }
        )
    columns = [
        ("phase", "phase"),
        ("changes", "changes"),
        ("notifications", "callouts"),
        ("attempts", "attempts"),
        ("retries", "retries"),
        ("challenged", "401 first"),
        ("delivered", "delivered"),
        ("faults", "no answer / answer lost"),
        ("given_up", "given up"),
    ]
    _table(rows, columns, out)
    print(
        "  Every attempt that reached the endpoint was sent without credentials first and answered with Basic's 401 "
        'challenge\n  (the definitions are not preemptive); "no answer" and "answer lost" are the stand-in\'s '
        "delivery faults, after which Zuora retries.",
        file=out,
    )
    retried: dict[str, list[Attempt]] = {}
    for attempt in attempts:
        retried.setdefault(attempt.notification_id, []).append(attempt)
    notable = []
    for tries in retried.values():
        if len(tries) == 1:
            continue
        last = tries[-1]
        outcome = f"delivered on attempt {last.attempt}" if last.delivered else f"given up after {last.attempt}"
        faults = ", ".join(
            "answer lost (endpoint said 200)" if t.fault == "answer_lost" else "no answer" for t in tries if t.fault
        )
        notable.append(
            {
                "record": f"{last.object_type} {last.record_id}",
                "change": last.change,
                "phase": str(last.phase),
                "faults": faults,
                "outcome": outcome,
            }
        )
    print("\n  Notifications Zuora tried more than once:", file=out)
    columns = [
        ("record", "record"),
        ("change", "change"),
        ("phase", "phase"),
        ("faults", "earlier attempts"),
        ("outcome", "outcome"),
    ]
    _table(notable, columns, out)


def reconciliation_report(
    stack: LocalDeployment,
    stream: DemoStream,
    result: dict[str, Any] | None,
    api_calls: int | None,
    out: TextIO,
) -> dict[str, Any]:
    """What the reconcile run read and queued, the lost changes now in Salesforce, the trail of one recovered
    record and of the deleted one; returns its figures (for the tests)."""
    from nrtsync.domain.mapping import load_mapping  # noqa: PLC0415 - the layer, imported once the stack set the environment

    mapping = load_mapping()
    section(out, "Reconciliation: the callouts Zuora gave up on, and a delete")
    if result is None:
        print("  Skipped (--skip-reconcile): the changes whose callouts Zuora gave up on were never queued.", file=out)
    else:
        read, queued = int(result.get("read", 0)), int(result.get("queued", 0))
        print(
            f"  The reconcile function read {read} Zuora records (every mapped object, parents first) and queued "
            f"{queued}:\n  the {len(stream.lost)} changes whose callouts Zuora gave up on.\n"
            f"  The other {read - queued} were settled (compared with the state table: written, deleted, or, for "
            "the test account the org refuses,\n  parked on the failure list for an operator; no Salesforce call). "
            f"Salesforce API calls to write what it queued: {api_calls}.",
            file=out,
        )
    standin = stack.standin
    held: dict[str, set[str]] = {}
    for obj in mapping.objects.values():
        records = standin.records(obj.sobject) if standin is not None else []
        held[obj.sobject] = {str(r.get(obj.external_id_field)) for r in records}
    rows = []
    for object_type, record_id in sorted(stream.lost):
        version = next(v for v in reversed(stream.versions) if v.key == (object_type, record_id))
        present = record_id in held[mapping.objects[object_type].sobject]
        rows.append({"record": f"{object_type} {record_id}", "change": version.what, "sf": "yes" if present else "NO"})
    print("\n  Changes whose callouts Zuora gave up on:", file=out)
    _table(rows, [("record", "record"), ("change", "change in Zuora"), ("sf", "in Salesforce")], out)

    object_type, record_id = stream.highlights["recovered"]
    section(out, f"Trail of {object_type} {record_id}")
    print("  (Zuora gave up on its last change's callout: queued by reconciliation, source reconcile)", file=out)
    _cli(["trail", object_type, record_id], stack, out)

    object_type, record_id = stream.highlights["deleted"]
    deleted_present = record_id in held[mapping.objects[object_type].sobject]
    section(out, f"Trail of {object_type} {record_id}")
    print("  (created by mistake, then deleted in Zuora: its DELETE callout deleted it in Salesforce)", file=out)
    _cli(["trail", object_type, record_id], stack, out)
    print(f"  In the Salesforce stand-in now: {'STILL THERE' if deleted_present else 'absent (deleted)'}", file=out)
    return {"reconcile": result, "reconcile_api_calls": api_calls, "deleted_present": deleted_present}
