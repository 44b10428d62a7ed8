"""An operator at a terminal, for the CLI's questions."""

from __future__ import annotations

import io


class Tty(io.StringIO):
    """An operator at a terminal who will type what the StringIO holds."""

    def isatty(self) -> bool:
        return True
