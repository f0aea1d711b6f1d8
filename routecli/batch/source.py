"""The batch input: a JSONL file or stdin, hashed (resume must see the same content) and read lazily."""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from pathlib import Path
from typing import IO, Iterator

from routecli.errors import UsageError
from routecli.inputs import InputLine, read_jsonl

_CHUNK = 1 << 20


class BatchInput:
    """One pass at open hashes and counts; `lines()` parses again, lazily, each time it is called."""

    def __init__(self, name: str, handle: IO[bytes], base_dir: Path) -> None:
        self.name = name  # as the user wrote it: "-" for stdin
        self.base_dir = base_dir  # image paths in lines are relative to this
        self._handle = handle
        digest = hashlib.sha256()
        self.total = 0  # non-blank lines: what read_jsonl yields
        for line in handle:
            digest.update(line)
            self.total += bool(line.strip())
        self.sha256 = digest.hexdigest()

    @classmethod
    def open(cls, name: str) -> BatchInput:
        if name == "-":
            # Spooled to a temporary file: resume needs the hash before the first line is sent,
            # and a large stdin should not sit in memory.
            spool = tempfile.TemporaryFile()
            shutil.copyfileobj(sys.stdin.buffer, spool, _CHUNK)
            spool.seek(0)
            return cls("-", spool, Path.cwd())
        path = Path(name)
        if path.is_dir():
            raise UsageError(f"{name} is a directory; give a JSONL file with one prompt per line")
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise UsageError(f"Cannot read {name}: {exc.strerror or exc}; check the path and its permissions") from None
        try:
            return cls(name, handle, path.resolve().parent)
        except OSError as exc:
            handle.close()
            raise UsageError(f"Cannot read {name}: {exc.strerror or exc}; check the file") from None

    def lines(self) -> Iterator[InputLine]:
        self._handle.seek(0)
        return read_jsonl(self._handle, self.base_dir)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> BatchInput:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
