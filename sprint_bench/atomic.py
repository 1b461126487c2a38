"""Write a file so that readers see either nothing or the whole file: write a temporary file beside it (unique per
process, so DDP ranks and parallel runs never share one), flush it to disk, then rename it over the path."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write`` with a binary file open on a temporary file in ``path``'s folder (created if missing), then
    replace ``path`` with it. If ``write`` raises, the temporary file is removed, ``path`` keeps what it held and the
    error propagates. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
