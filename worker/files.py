"""Writing files so that a reader never sees half of one."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_write(path: Path, newline: str | None = None) -> Iterator[IO[str]]:
    """Write to ``path.tmp`` and rename over ``path`` only if the block finished."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline=newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def rotate(directory: Path, pattern: str, keep: int, key: Callable[[Path], object]) -> list[Path]:
    """Delete all but the ``keep`` newest files matching ``pattern``; return what was deleted."""
    files = sorted(directory.glob(pattern), key=key, reverse=True)
    for old in files[keep:]:
        old.unlink()
    return files[keep:]
