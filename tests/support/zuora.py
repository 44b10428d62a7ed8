"""The Zuora stand-in for integration tests: started as a child process on a free 127.0.0.1 port, stopped by its pid."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from nrtsync.domain.mapping import MappingConfig
from nrtsync.domain.models.callout import QueuedChange
from nrtsync.domain.zoql import change_from_record, changes_query
from nrtsync.ports.zuora import ZuoraPort
from nrtsync_local.standin.process import ZuoraStandinClient, ZuoraStandinProcess


@contextmanager
def running_zuora_standin() -> Iterator[ZuoraStandinClient]:
    """Starts ``python -m nrtsync_local.zuora``; yields its control client; closes it and stops the process."""
    with tempfile.TemporaryDirectory(prefix="zuora-standin-") as workdir:
        process = ZuoraStandinProcess(Path(workdir))
        client = process.start()
        try:
            yield client
        finally:
            client.close()
            process.stop()


def query_changes(
    zuora: ZuoraPort, mapping: MappingConfig, object_type: str, since: datetime, until: datetime
) -> Iterator[list[QueuedChange]]:
    """The changes of ``object_type`` updated in ``[since, until)``, one list per Zuora page: ``query``, then
    ``queryMore`` with each page's locator until ``done``, as the sweep engine reads them."""
    received_at = datetime.now(UTC)
    page = zuora.query(changes_query(mapping, object_type, since, until))
    while True:
        yield [change_from_record(mapping, object_type, r, received_at=received_at) for r in page.records]
        if page.done or not page.query_locator:
            return
        page = zuora.query_more(page.query_locator)
