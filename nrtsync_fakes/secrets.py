"""Secrets held in memory (``nrtsync.ports.secrets.SecretSource``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nrtsync.ports.secrets import SecretUnavailableError


class MemorySecrets:
    """``SecretSource``: ``secrets`` by id, else ``default`` for any id; an exception as the value is raised, as a
    source that cannot answer. ``asked`` lists every id read, so a test can say a path costs no secret read."""

    def __init__(
        self,
        secrets: Mapping[str, dict[str, Any] | Exception] | None = None,
        *,
        default: dict[str, Any] | Exception | None = None,
    ) -> None:
        self.secrets = dict(secrets or {})
        self.default = default
        self.asked: list[str] = []

    @property
    def reads(self) -> int:
        return len(self.asked)

    def get_json(self, secret_id: str) -> dict[str, Any]:
        self.asked.append(secret_id)
        value = self.secrets.get(secret_id, self.default)
        if value is None:
            raise SecretUnavailableError(f"no secret {secret_id}")
        if isinstance(value, Exception):
            raise value
        return dict(value)
