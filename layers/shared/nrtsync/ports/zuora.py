"""The contract of Zuora's REST query actions, as the reconciliation and backfill services will use them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from nrtsync.domain.models.zuora import ZuoraRecord


@dataclass(frozen=True)
class QueryPage:
    """One page of ``POST /v1/action/query`` or ``/v1/action/queryMore``: at most 2,000 records."""

    records: list[ZuoraRecord] = field(default_factory=list)
    done: bool = True
    query_locator: str | None = None
    """Set when ``done`` is false: what ``query_more`` takes to read the next page."""


class ZuoraPort(Protocol):
    """Zuora's ZOQL query actions. Raises ``ZuoraRetryableError``, ``ZuoraAuthError`` or ``ZuoraRequestError``."""

    def query(self, zoql: str) -> QueryPage: ...

    def query_more(self, query_locator: str) -> QueryPage: ...
