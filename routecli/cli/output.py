"""Messages for people on stderr: one line each, coloured only on a terminal without NO_COLOR."""

from __future__ import annotations

import os
import sys
from typing import TextIO

_STYLES = {"error": "31;1", "warning": "33", "note": "2"}


def use_color(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def _say(kind: str, message: str, prefix: bool = True) -> None:
    line = " ".join(message.split("\n"))
    text = f"{kind}: {line}" if prefix else line
    if use_color(sys.stderr):
        text = f"\x1b[{_STYLES[kind]}m{text}\x1b[0m"
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def error(message: str) -> None:
    _say("error", message)


def warn(message: str) -> None:
    _say("warning", message)


def note(message: str) -> None:
    _say("note", message, prefix=False)
