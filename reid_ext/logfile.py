"""Copy everything printed to a log file, as torchreid's ``Logger`` does, without its flaw.

torchreid's ``Logger`` closes the console stream when it is garbage-collected; this tee only
closes its own file and puts ``sys.stdout`` back when the block ends.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


class _Tee:
    def __init__(self, console: TextIO, file: TextIO) -> None:
        self.console, self.file = console, file

    def write(self, text: str) -> int:
        self.console.write(text)
        self.file.write(text)
        return len(text)

    def flush(self) -> None:
        self.console.flush()
        self.file.flush()

    def isatty(self) -> bool:
        return self.console.isatty()

    def __getattr__(self, name: str):  # encoding, fileno, ... of the console
        return getattr(self.console, name)


@contextlib.contextmanager
def tee_stdout(path: str | Path) -> Iterator[None]:
    """Within the block, ``print`` writes to the console and appends to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    console = sys.stdout
    with open(path, "a", encoding="utf-8") as file:
        sys.stdout = _Tee(console, file)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stdout = console
