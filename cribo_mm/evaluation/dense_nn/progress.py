# Copyright (c) cribo-mm contributors. All rights reserved.
"""A thin progress-bar helper (mmengine's ``ProgressBar`` when enabled)."""
import sys
from typing import Optional

__all__ = ['make_progress']


class _NullProgress:
    """Progress object that does nothing."""

    def update(self, num_tasks: int = 1) -> None:
        """Ignore an update."""

    def close(self) -> None:
        """Nothing to close."""


class _MMEngineProgress:
    """mmengine ``ProgressBar`` with a title and a closing newline."""

    def __init__(self, total: int, title: Optional[str]) -> None:
        from mmengine.utils import ProgressBar
        if title:
            print(title, flush=True)
        self._bar = ProgressBar(max(int(total), 1))
        self._closed = False

    def update(self, num_tasks: int = 1) -> None:
        """Advance by ``num_tasks``."""
        self._bar.update(num_tasks)

    def close(self) -> None:
        """End the bar's line."""
        if not self._closed:
            self._closed = True
            sys.stdout.write('\n')
            sys.stdout.flush()


def make_progress(total: int, enabled: bool = True, title: str = None):
    """Create a progress bar over ``total`` tasks.

    Args:
        total (int): Number of tasks.
        enabled (bool): When False, a silent object is returned.
            Defaults to True.
        title (str, optional): Line printed above the bar.

    Returns:
        An object with ``update(num_tasks=1)`` and ``close()``.
    """
    if not enabled:
        return _NullProgress()
    try:
        return _MMEngineProgress(total, title)
    except ImportError:  # mmengine missing: stay silent
        return _NullProgress()
