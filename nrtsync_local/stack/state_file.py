"""The state file (``.local/stack.json``): what ``make local`` writes for the operator CLI and other tools, mode
0600 because it holds the callout password, and the check that no other live stack owns it."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nrtsync_local.stack.spec import LocalDeploymentError

DEFAULT_STATE_DIR = Path(".local")
STATE_FILE_NAME = "stack.json"


def write_private_json(path: Path, document: Mapping[str, Any]) -> None:
    """Writes ``document`` to ``path`` with mode 0600, atomically (a reader never sees half a file)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")
    temporary.replace(path)


def claim_state_file(path: Path | None) -> None:
    """Raises if ``path`` names a stack that still runs in another process; removes it if that stack was killed."""
    if path is None or not path.exists():
        return
    try:
        pid = int(json.loads(path.read_text()).get("pid", 0))
    except (ValueError, OSError, AttributeError):
        pid = 0
    if pid and pid != os.getpid() and _pid_alive(pid):
        raise LocalDeploymentError(f"{path} says a local stack runs as pid {pid}; stop it first")
    path.unlink(missing_ok=True)  # left by a stack that was killed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
