"""The HTTPS Salesforce stand-in as a subprocess for tests (the local stack starts it the same way).

``REQUESTS_CA_BUNDLE`` is exported on the build machines and wins over ``session.verify`` whenever a
session trusts the environment; ``trusting_session`` sets ``trust_env = False`` and ``verify = ca_file``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from nrtsync_local.processes import StandinClient, StandinProcess, trusting_session

__all__ = ["StandinClient", "running_salesforce_standin", "trusting_session"]


@contextmanager
def running_salesforce_standin(extra_args: Sequence[str] = ()) -> Iterator[StandinClient]:
    """Starts ``python -m nrtsync_local.salesforce_standin`` on a free 127.0.0.1 port; stops it by its pid."""
    with tempfile.TemporaryDirectory(prefix="sf-standin-") as workdir:
        process = StandinProcess(Path(workdir), extra_args=tuple(extra_args))
        try:
            yield process.start()
        finally:
            process.stop()
