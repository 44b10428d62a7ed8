"""An in-memory Zuora (``nrtsync.ports.zuora``): ``action/query`` and ``queryMore`` over records held in memory.

``MemoryZuora`` pages as Zuora's query actions do (at most ``page_size`` records a page, a locator per next page,
no order guaranteed: it shuffles each result) and can forget its locators, as a Zuora locator that expired. The
HTTPS stand-in (``nrtsync_local.zuora``) is what integration tests use.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nrtsync.domain.models.zuora import ZuoraRecord, ZuoraRequestError
from nrtsync.domain.zuora_dates import parse_zuora_datetime
from nrtsync.ports.zuora import QueryPage

_BOUND = "UpdatedDate >= '"
_BY_ID = " where Id = '"


@dataclass
class MemoryZuora:
    """Zuora's ``action/query`` and ``queryMore`` over records held in memory (``records[object][id]``)."""

    page_size: int = 2000
    records: dict[str, dict[str, ZuoraRecord]] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)
    query_more_calls: int = 0
    _locators: dict[str, list[ZuoraRecord]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _shuffle: random.Random = field(default_factory=lambda: random.Random(7))  # noqa: S311 - order only

    def put(self, object_type: str, *records: ZuoraRecord) -> None:
        table = self.records.setdefault(object_type, {})
        for record in records:
            table[record["Id"]] = dict(record)

    def forget_locators(self) -> None:
        """Every locator handed out is refused from now on (Zuora's locators do not live for ever)."""
        self._locators.clear()

    def query(self, zoql: str) -> QueryPage:
        self.queries.append(zoql)
        object_type = zoql.split(" from ", 1)[1].split(" ", 1)[0]
        if _BY_ID in zoql:  # one record by its Id
            record_id = zoql.split(_BY_ID, 1)[1].split("'", 1)[0]
            found = self.records.get(object_type, {}).get(record_id)
            return QueryPage(records=[dict(found)] if found else [], done=True)
        since, until = _window(zoql)
        condition = _condition(zoql)
        rows = [
            dict(r)
            for r in self.records.get(object_type, {}).values()
            if since <= (updated := parse_zuora_datetime(r["UpdatedDate"]))
            and (until is None or updated < until)
            and condition(r)
        ]
        self._shuffle.shuffle(rows)
        return self._page(rows)

    def query_more(self, query_locator: str) -> QueryPage:
        self.query_more_calls += 1
        if query_locator not in self._locators:
            raise ZuoraRequestError("invalid queryLocator", code="INVALID_VALUE", http_status=400)
        return self._page(self._locators.pop(query_locator))

    def _page(self, rows: list[ZuoraRecord]) -> QueryPage:
        page, rest = rows[: self.page_size], rows[self.page_size :]
        if not rest:
            return QueryPage(records=page, done=True)
        locator = f"loc-{next(self._ids)}"
        self._locators[locator] = rest
        return QueryPage(records=page, done=False, query_locator=locator)


def _window(zoql: str) -> tuple[datetime, datetime | None]:
    where = zoql.split(" where ", 1)[1]
    bounds = [part.split("'")[1] for part in where.split(" and ") if part.startswith("UpdatedDate")]
    return parse_zuora_datetime(bounds[0]), parse_zuora_datetime(bounds[1]) if len(bounds) > 1 else None


def _condition(zoql: str) -> Callable[[ZuoraRecord], bool]:
    """The query's one other condition (``Status != 'Expired'``: a subscription's current version), if any."""
    where = zoql.split(" where ", 1)[1]
    others = [part for part in where.split(" and ") if not part.startswith("UpdatedDate")]
    if not others:
        return lambda record: True
    field_name, operator, quoted = others[0].split(" ", 2)
    value = quoted.strip("'")
    if operator == "=":
        return lambda record: str(record.get(field_name, "")) == value
    return lambda record: str(record.get(field_name, "")) != value


# The Salesforce Account a fake Zuora account belongs to (its ``CrmId``), unless a test says otherwise.
LINKED_CRM_ID = "0015g00000LnK00AAA"


def zuora_account(record_id: str, updated: datetime, **fields: Any) -> ZuoraRecord:
    """A Zuora Account as a query returns it (``UpdatedDate`` with an offset, as Zuora's REST API writes it), linked
    to a Salesforce Account (``CrmId``) unless ``fields`` say otherwise: Salesforce refuses a billing account
    without one."""
    return {
        "Id": record_id,
        "UpdatedDate": updated.isoformat(),
        "Name": f"Account {record_id}",
        "CrmId": LINKED_CRM_ID,
        **fields,
    }
