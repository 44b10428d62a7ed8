"""Tables and a progress bar for a terminal: shared by the CLI and the local demo's report."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], out: TextIO) -> None:
    """``rows`` as aligned columns; ``columns`` pairs each row key with its title. ``None`` prints empty."""
    cells = [[("" if row.get(key) is None else str(row.get(key))) for key, _ in columns] for row in rows]
    widths = [max([len(title)] + [len(c[i]) for c in cells]) for i, (_, title) in enumerate(columns)]
    print("  ".join(title.ljust(w) for (_, title), w in zip(columns, widths, strict=True)), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)), file=out)


class ProgressBar:
    """A one-line progress bar on stderr, so piping stdout stays clean."""

    def __init__(self, label: str, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self._label, self._stream, self._width = label, stream, width

    def __call__(self, done: int, total: int) -> None:
        filled = int(self._width * done / total) if total else self._width
        bar = "#" * filled + "." * (self._width - filled)
        end = "\n" if done >= total else ""
        print(f"\r{self._label} [{bar}] {done}/{total}", end=end, file=self._stream, flush=True)
