"""Errors a user can fix, and the exit statuses every command shares.

Kept free of hydra and omegaconf (like `common.atomic` and `common.repo`) so the GPU-node path, whose
python has neither, reports bad input the same way as the hydra apps do.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # the work ran and failed (every cell of a sweep failed, a step of a pipeline)
EXIT_BAD_INPUT = 2  # a key, a value or a file the user can fix; nothing was written


class BadInput(ValueError):
    """Input the user can fix (a key, a value, a file): reported plainly, exit status 2."""
