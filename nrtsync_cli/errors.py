"""How every ``nrtsync`` command reports an error: one prefix in text, one shape in JSON, one set of exit codes."""

from __future__ import annotations

import json
import sys
from typing import TextIO

# Exit codes, the same for every command (documented in docs/OPERATIONS.md).
EXIT_OK = 0
EXIT_NOT_ALL = 1  # some items not handled, a declined confirmation, or (status) the stack is degraded
EXIT_USAGE = 2  # the command line asks for something that cannot be; nothing was contacted
EXIT_UNREACHABLE = 3  # the stack (or the local state file) could not be read

PREFIX = "nrtsync: error: "


def report_error(message: str, code: int, *, as_json: bool, err: TextIO | None = None) -> int:
    """Print ``message`` on stderr, as ``nrtsync: error: …`` or, under ``--json``, as one JSON object, so a
    script reading either never has to guess; returns ``code``."""
    stream = err or sys.stderr
    if as_json:
        print(json.dumps({"error": message, "exit_code": code}), file=stream)
    else:
        print(f"{PREFIX}{message}", file=stream)
    return code
