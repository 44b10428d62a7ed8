"""Child process: ONE 200-record sync invocation (in-memory state/history, HTTPS stand-in); prints peak RSS.

    python -m bench.rss_child '{"url": ..., "ca_file": ..., "client_id": ..., "client_secret": ...}'

Prints one JSON line: peak RSS (VmHWM) at interpreter start, after the imports, and after the invocation (MB).
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path


def _max_rss_mb() -> float:
    """Peak RSS of this process image: VmHWM (ru_maxrss is not usable in a child: Linux carries the parent's
    peak over fork and exec, so a child of a 140 MB benchmark would report at least 140 MB)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)  # kB
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def _ru_maxrss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> None:
    at_start = _max_rss_mb()
    from bench.common import prepare_environment  # noqa: PLC0415 - after the first reading

    prepare_environment()
    from bench import sync_bench  # noqa: PLC0415
    from bench.workload import Workload  # noqa: PLC0415
    from functions.sync import app  # noqa: PLC0415
    from nrtsync_local.standin.process import StandinClient, trusting_session  # noqa: PLC0415

    info = json.loads(sys.argv[1])
    standin = StandinClient(
        url=info["url"],
        ca_file=info["ca_file"],
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        pid=int(info["pid"]),
        _control=trusting_session(info["ca_file"]),
    )
    after_imports = _max_rss_mb()
    app.service.use(sync_bench.in_memory_service(standin, sync_bench.sync_settings()))
    run = sync_bench.invoke_sync(standin, Workload())
    standin.close()
    print(
        json.dumps(
            {
                "interpreter_start_mb": at_start,
                "after_imports_mb": after_imports,
                "peak_rss_mb": _max_rss_mb(),
                "ru_maxrss_mb_inherited": _ru_maxrss_mb(),
                "records": run.records,
                "seconds": round(run.seconds, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
