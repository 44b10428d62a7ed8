"""The sync function's own SQS event source mapping, enabled or disabled through the Lambda API.

The mapping is created by the template (the function's SQS event), so its UUID is not known to the function:
it is found by function name and queue ARN (``ListEventSourceMappings``), then updated
(``UpdateEventSourceMapping`` with ``Enabled``). Lambda answers the update at once; the mapping moves through
``Disabling`` to ``Disabled`` within seconds, and stops polling then (AWS Lambda Developer Guide, "Lambda
event source mappings": the ``State`` values). A batch already being processed finishes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from nrtsync.adapters.aws.clients import STANDARD_CONFIG
from nrtsync.ports.breaker import BreakerUnavailableError, EventSourceBusyError

# UpdateEventSourceMapping answers ResourceInUseException while the mapping is Enabling, Disabling or Updating
# (Lambda API reference, UpdateEventSourceMapping, Errors); those last seconds, so a few short waits cover them.
_BUSY_WAITS = (0.5, 1.0, 2.0)
# The states in which Lambda refuses another change (ResourceInUseException): a change is in progress.
CHANGING_STATES = frozenset({"Creating", "Enabling", "Disabling", "Updating", "Deleting"})


class LambdaEventSourceSwitch:
    """EventSourceSwitch on the Lambda API; the mapping's UUID is looked up once per container."""

    def __init__(
        self,
        function_name: str,
        queue_arn: str,
        client: Any = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._function_name = function_name
        self._queue_arn = queue_arn
        # No mypy_boto3_lambda stubs pinned: the two calls used are checked by the moto integration test.
        self._client: Any = client or boto3.client("lambda", config=STANDARD_CONFIG)
        self._uuid: str | None = None
        self._sleep = sleep

    def set_enabled(self, enabled: bool) -> None:
        """Raises EventSourceBusyError when the mapping is still changing state after the retries (in progress,
        not a failure), BreakerUnavailableError for anything else."""
        for wait in (*_BUSY_WAITS, None):
            try:
                self._client.update_event_source_mapping(UUID=self._mapping_uuid(), Enabled=enabled)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code == "ResourceInUseException":
                    if wait is None:
                        raise EventSourceBusyError(
                            f"the event source mapping is still changing state; enabled={enabled} not yet asked"
                        ) from exc
                    self._sleep(wait)
                    continue
                if code == "ResourceNotFoundException":
                    self._uuid = None  # recreated by a deploy: look it up again next time
                message = f"could not set the event source mapping enabled={enabled}: {code}"
                raise BreakerUnavailableError(message) from exc
            except BotoCoreError as exc:
                raise BreakerUnavailableError(f"could not set the event source mapping enabled={enabled}") from exc
            return

    def state(self) -> str:
        """The mapping's ``State`` (``Enabled``, ``Disabled``, or while it changes ``Enabling``, ``Disabling``,
        ``Updating``, ``Creating``), for an operator's status."""
        try:
            mapping = self._client.get_event_source_mapping(UUID=self._mapping_uuid())
        except (ClientError, BotoCoreError) as exc:
            raise BreakerUnavailableError("could not read the event source mapping") from exc
        return str(mapping.get("State", "unknown"))

    def _mapping_uuid(self) -> str:
        if self._uuid is None:
            mappings = self._client.list_event_source_mappings(
                FunctionName=self._function_name, EventSourceArn=self._queue_arn
            ).get("EventSourceMappings", [])
            uuids = [m["UUID"] for m in mappings if "UUID" in m]
            if len(uuids) != 1:
                raise BreakerUnavailableError(
                    f"expected one event source mapping of {self._function_name} on {self._queue_arn},"
                    f" found {len(uuids)}"
                )
            self._uuid = uuids[0]
        return self._uuid
