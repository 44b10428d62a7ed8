"""The running local stack's state file (``.local/stack.json``, written by ``make local``), for ``--local``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

LOCAL_STACK_FILE = Path(".local/stack.json")


class LocalStateError(RuntimeError):
    """The state file is missing or is not a local stack's; the message says which."""


@dataclass(frozen=True)
class LocalState:
    """What the state file says, and a boto3 session for the moto endpoint it names."""

    values: dict[str, Any]
    endpoint: str
    session: boto3.Session

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint)  # type: ignore[call-overload]


def read_local_state(state_file: Path, *required: str) -> LocalState:
    """The state file's values (``required`` keys checked) with a session that can only reach the local stack."""
    try:
        values = json.loads(state_file.read_text(encoding="utf-8"))
        endpoint, region = str(values["aws_endpoint_url"]), str(values["region"])
        for key in required:
            values[key]
    except FileNotFoundError as exc:
        raise LocalStateError(f"{state_file} does not exist (is `make local` running?)") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LocalStateError(f"{state_file} is not a local stack's state file: {exc!r}") from exc
    # moto takes any keys; fixed ones mean an operator's real AWS credentials are never sent to the local stack.
    session = boto3.Session(
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - a placeholder moto accepts, not a secret
        region_name=region,
    )
    return LocalState(values=values, endpoint=endpoint, session=session)
