# Copyright (c) cribo-mm contributors. All rights reserved.
"""Silence the upstream warnings every run prints and nobody can act on.

Each filter matches one exact message, so anything else (including the
same warnings about other parameters or other backends) still shows:

* mmengine's optimizer constructor warns once per frozen parameter; the
  EMA teacher (``teacher.module.*``) is frozen by design, which gave 64
  identical warnings per demo run;
* mmengine's ``CheckpointHook`` builds a ``FileClient`` (deprecated by
  mmengine itself) in every run, with two deprecation warnings;
* PyTorch warns that ``pin_memory=True`` has no effect without an
  accelerator: the configs pin memory for GPU runs, and a CPU run is
  simply not pinned.
"""
import functools
import logging
import re
import warnings

__all__ = ['ExpectedWarningsFilter', 'install_log_filters']

#: mmengine log messages dropped by :class:`ExpectedWarningsFilter`.
EXPECTED_LOG_MESSAGES = (
    re.compile(r'teacher\.module\.\S+ is skipped since its '
               r'requires_grad=False'),
    re.compile(r'"FileClient" will be deprecated in future\. Please use io '
               r'functions in \S+$'),
    re.compile(r'"HardDiskBackend" is the alias of "LocalBackend" and the '
               r'former will be deprecated in future\.'),
)

#: Python warnings ignored (regular expressions matched at the start).
EXPECTED_WARNINGS = (
    "'pin_memory' argument is set as true but no accelerator is found",
)


class ExpectedWarningsFilter(logging.Filter):
    """Drop the mmengine log records of :data:`EXPECTED_LOG_MESSAGES`."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to keep ``record``.

        Args:
            record (logging.LogRecord): The record.

        Returns:
            bool: False for an expected warning, True otherwise.
        """
        if record.levelno != logging.WARNING:
            return True
        message = record.getMessage()
        return not any(p.fullmatch(message) for p in EXPECTED_LOG_MESSAGES)


_FILTER = ExpectedWarningsFilter()


def install_log_filters() -> None:
    """Attach the filter to every ``MMLogger`` (existing and future) and
    ignore the expected Python warnings. Idempotent."""
    from mmengine.logging import MMLogger
    for instance in list(MMLogger._instance_dict.values()):
        if _FILTER not in instance.filters:
            instance.addFilter(_FILTER)
    init = MMLogger.__init__
    if not getattr(init, '_cribo_filtered', False):

        @functools.wraps(init)
        def filtered_init(self, *args, **kwargs):
            init(self, *args, **kwargs)
            self.addFilter(_FILTER)

        filtered_init._cribo_filtered = True
        MMLogger.__init__ = filtered_init
    for message in EXPECTED_WARNINGS:
        warnings.filterwarnings(
            'ignore', message=re.escape(message), category=UserWarning)
