"""Make moto's DynamoDB apply conditional writes atomically, as DynamoDB does.

moto evaluates a ConditionExpression and then applies the write without a lock, so two threads can both
pass the same condition. The sync function's newest-wins guarantee rests on DynamoDB's real behaviour
(a conditional write to an item is atomic), so tests and the local stack serialise moto's item operations.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend

_LOCK = threading.RLock()
_PATCHED_ATTR = "_nrtsync_atomic"
_OPERATIONS = ("put_item", "update_item", "delete_item", "get_item", "transact_write_items", "batch_write_item")


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    setattr(wrapper, _PATCHED_ATTR, True)
    return wrapper


def make_dynamodb_writes_atomic() -> None:
    """Patch moto's DynamoDB backend once per process (idempotent)."""
    for name in _OPERATIONS:
        method = getattr(DynamoDBBackend, name)
        if not getattr(method, _PATCHED_ATTR, False):
            setattr(DynamoDBBackend, name, _locked(method))
