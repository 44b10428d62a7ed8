"""A deployed stack's Outputs, read once per command: every command that takes ``--stack`` finds its tables,
queues, functions and secrets there."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError


class StackReadError(RuntimeError):
    """The stack cannot be read, or lacks an output a command needs; the message names the stack and the output."""


class StackOutputs(Mapping[str, str]):
    """The Outputs of one stack by key; a missing key raises StackReadError naming it (deploy this version first)."""

    def __init__(self, stack_name: str, outputs: Mapping[str, str]) -> None:
        self.stack_name = stack_name
        self._outputs = dict(outputs)

    def __getitem__(self, key: str) -> str:
        try:
            return self._outputs[key]
        except KeyError:
            raise StackReadError(f"stack {self.stack_name} has no output {key!r} (deploy this version first)") from None

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        """An optional output (None when the stack has none by that key)."""
        return self._outputs.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._outputs)

    def __len__(self) -> int:
        return len(self._outputs)


def read_stack_outputs(cloudformation: Any, stack_name: str) -> StackOutputs:
    """``DescribeStacks`` for one stack; StackReadError when it cannot be read."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except (ClientError, BotoCoreError) as exc:
        raise StackReadError(f"cannot read stack {stack_name}: {exc}") from exc
    if not stacks:
        raise StackReadError(f"cannot read stack {stack_name}: no such stack")
    return StackOutputs(stack_name, {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])})
