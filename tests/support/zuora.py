"""The Zuora stand-in for integration tests: started as a child process on a free 127.0.0.1 port, stopped by its pid."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nrtsync_local.processes import ZuoraStandinClient, ZuoraStandinProcess


@contextmanager
def running_zuora_standin() -> Iterator[ZuoraStandinClient]:
    """Starts ``python -m nrtsync_local.zuora``; yields its control client; closes it and stops the process."""
    with tempfile.TemporaryDirectory(prefix="zuora-standin-") as workdir:
        process = ZuoraStandinProcess(Path(workdir))
        client = process.start_zuora()
        try:
            yield client
        finally:
            client.close()
            process.stop()
