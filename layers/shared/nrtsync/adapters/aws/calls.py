"""Two shapes every AWS adapter needs: requests cut to a service's count and size limits, and DynamoDB's
conditional writes (a failed condition is an answer, not an error)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from botocore.exceptions import BotoCoreError, ClientError


def limited_chunks[T](
    items: Sequence[T] | Iterable[T], size_of: Callable[[T], int], *, max_count: int, max_bytes: int
) -> Iterator[list[T]]:
    """Consecutive chunks of at most ``max_count`` items and ``max_bytes`` by ``size_of`` (an item larger than
    ``max_bytes`` alone still makes a chunk of one: the service, not the cutting, refuses it)."""
    chunk: list[T] = []
    size = 0
    for item in items:
        item_size = size_of(item)
        if chunk and (len(chunk) >= max_count or size + item_size > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    if chunk:
        yield chunk


def conditional_write[T](write: Callable[[], T], error: Callable[[str], Exception], what: str) -> T | None:
    """Run one conditional DynamoDB write: its response when it landed, None when its condition did not hold;
    anything else (throttling, an unreachable endpoint) raises ``error(what)`` from the cause."""
    try:
        return write()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return None
        raise error(what) from exc
    except BotoCoreError as exc:
        raise error(what) from exc
