"""``make demo``: the local demo (``nrtsync_local.demo``), then its dashboard page, written while its stack runs.

Part of the local harness (a checkout's tool): the installed CLI ships without it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from nrtsync_cli.dashboard import CloudWatchSource
from nrtsync_cli.dashboard_command import LOCAL_STACK_NAME, dashboard_body_of_template, write_dashboard

DEFAULT_PAGE = Path(".local/dashboard.html")
EXIT_INTERRUPTED = 130


def stack_name_of(cloudwatch: Any) -> str:
    """The local stack's name, read from the namespace its metrics are published in (``NrtSync/<stack>``)."""
    for metric in cloudwatch.list_metrics().get("Metrics", []):
        namespace = str(metric.get("Namespace", ""))
        if namespace.startswith("NrtSync/"):
            return namespace.removeprefix("NrtSync/")
    return LOCAL_STACK_NAME


def write_stack_dashboard(
    stack: Any,
    output: Path,
    since: timedelta = timedelta(minutes=15),
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """The running local stack's dashboard page (``stack``: ``nrtsync_local.stack.LocalDeployment``)."""
    # The metrics function publishes whole minutes: wait for the demo's last minute to close, then run it, so that
    # the page has this run's latency windows.
    now = clock()
    wait = 60 - now.second - now.microsecond / 1e6 + 1
    print(f"waiting {wait:.0f} s for the minute to close, then publishing its latency metrics", file=sys.stderr)
    sleep(wait)
    stack.run_metrics_now()
    cloudwatch = stack.client("cloudwatch")
    name = stack_name_of(cloudwatch)
    body = dashboard_body_of_template(name, str(stack.region))
    args = argparse.Namespace(since=since, output=output, stack=name, json=False)
    return write_dashboard(args, stack.operations(), sys.stdout, body=body, source=CloudWatchSource(cloudwatch))


def main(argv: Sequence[str] | None = None) -> int:
    from nrtsync_local.demo.run import DemoOptions, run_demo  # noqa: PLC0415 - the checkout's harness

    parser = argparse.ArgumentParser(
        prog="python -m nrtsync_local.demo.with_dashboard", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--dashboard", type=Path, default=DEFAULT_PAGE, help="where to write the dashboard page")
    args = parser.parse_args(argv)
    written: list[Path] = []
    try:
        demo = run_demo(
            DemoOptions(),
            out=sys.stdout,
            inspect=lambda stack, _: written.append(write_stack_dashboard(stack, args.dashboard)),
        )
    except KeyboardInterrupt:
        print("\ninterrupted: the local stack was stopped", file=sys.stdout)
        return EXIT_INTERRUPTED
    if written:
        print(f"\nThe dashboard of this run: {written[0].resolve()}")
    return demo.exit_code


if __name__ == "__main__":
    sys.exit(main())
