"""``nrtsync plan``: the planner's command line (offline: needs neither ``--stack`` nor ``--local``)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any, TextIO

from nrtsync_cli.plan import ALLOCATIONS, MEASURED, Traffic, plan
from nrtsync_cli.render import print_table

PLAN_COMMAND = "plan"
MAX_CHANGES_PER_DAY = 100_000_000


def _whole(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text) if text.strip().isdigit() else -1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from {low:,} to {high:,}")
        return value

    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share above 0 and at most 1 (e.g. 0.8)")
    return value


def _hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 24:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hours above 0 and at most 24")
    return value


def add_plan_command(add_command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    sub = add_command(
        PLAN_COMMAND, "Salesforce API calls a day and latency for your traffic; recommends BatchingWindowSeconds"
    )
    sub.add_argument(
        "--changes-per-day", type=_whole(1, MAX_CHANGES_PER_DAY), required=True, help="Zuora changes a day"
    )
    sub.add_argument("--licences", type=_whole(0, 1_000_000), required=True, help="the org's Salesforce user licences")
    sub.add_argument("--edition", choices=sorted(ALLOCATIONS), default="enterprise", help="default: enterprise")
    sub.add_argument(
        "--peak-share",
        type=_fraction,
        default=0.8,
        help="share of the day's changes that arrive in the peak hours (default 0.8)",
    )
    sub.add_argument("--peak-hours", type=_hours, default=8.0, help="hours the peak lasts (default 8; 24: flat)")
    sub.add_argument(
        "--max-share",
        type=_fraction,
        default=0.5,
        help="share of the daily allocation nrtsync may use (default 0.5; other integrations use the org too)",
    )


def _fmt(option: dict[str, Any]) -> dict[str, Any]:
    return {
        "window": f"{option['window_seconds']} s",
        "calls": f"{option['calls_per_day']:,.0f}",
        "share": f"{option['share_of_allocation']:.1%}",
        "batch": f"{option['peak_batch_size']:.1f}",
        "p50": f"{option['p50_s']:.1f} s",
        "p90": f"{option['p90_s']:.1f} s",
        "keeps up": "yes" if option["keeps_up"] else "NO",
    }


def run_plan(args: argparse.Namespace, out: TextIO) -> int:
    """Print the plan; exit 0 with a recommendation, 1 when no setting fits."""
    traffic = Traffic(args.changes_per_day, peak_share=args.peak_share, peak_hours=args.peak_hours)
    if args.peak_hours >= 24 and args.peak_share < 1:
        traffic = Traffic(args.changes_per_day, peak_share=1.0, peak_hours=24.0)
    result = plan(traffic, edition=args.edition, licences=args.licences, max_share=args.max_share)
    data = result.as_dict() | {
        "edition": args.edition,
        "licences": args.licences,
        "model_measured_at": MEASURED.measured_at,
    }
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2), file=out)
        return 0 if result.recommended else 1
    print(
        f"{args.changes_per_day:,} changes a day, {traffic.peak_rate:.2f}/s at the peak; "
        f"{args.edition} edition, {args.licences:,} licences: {result.allocation:,} API calls per 24 h",
        file=out,
    )
    print(f"SyncMaxConcurrency {result.concurrency} (keeps up with the peak with half again to spare)", file=out)
    columns = [(k, k) for k in ("window", "calls", "share", "batch", "p50", "p90", "keeps up")]
    print_table([_fmt(o) for o in data["options"]], columns, out)
    if result.recommended is None:
        print(f"no recommendation: {result.reason}", file=out)
        return 1
    best = result.recommended
    print(
        f"recommended: BatchingWindowSeconds={best.window_seconds} SyncMaxConcurrency={best.concurrency}: "
        f"{best.calls_per_day:,.0f} calls a day ({best.share_of_allocation:.1%} of the allocation), "
        f"P50 {best.p50_s:.1f} s, P90 {best.p90_s:.1f} s at the peak ({result.reason})",
        file=out,
    )
    return 0
