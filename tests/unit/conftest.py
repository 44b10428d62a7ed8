"""Unit tier: the in-memory fakes of ``nrtsync_fakes`` only; a unit test that opens a connection fails."""

from __future__ import annotations

import socket
from typing import Any

import pytest


class NetworkInUnitTestError(RuntimeError):
    """A unit test tried to connect somewhere: it belongs in tests/integration, or needs a fake."""


def _refuse(_socket: socket.socket, address: Any) -> None:
    raise NetworkInUnitTestError(f"unit tests run without network (tried {address!r}); use nrtsync_fakes")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    # A real adapter given no fake would otherwise reach for AWS or Salesforce and pass or fail by luck.
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
