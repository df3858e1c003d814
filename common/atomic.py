"""Atomic writes: a reader sees the old file or the new one, never half of either.

Results, tables and figures are read by later steps (and by other jobs sharing a results directory),
so every artefact goes to a hidden temporary file in the same directory and is renamed into place.
Hidden names (a leading dot) are what readers skip, so a temporary left by a killed writer is never
taken for a result.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: str | os.PathLike, text: str | bytes) -> Path:
    """Write `text` (str or bytes) to `path` through a hidden temporary and a rename; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
