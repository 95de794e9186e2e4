# Copyright (c) cribo-mm contributors. All rights reserved.
"""Bounding the damage of distributed faults: stuck ranks and dead launchers.

Two failure modes of a multi-process job are turned into a clean exit:

* **A rank stops responding** (deadlock, stopped process, dead node): the
  others wait in a collective. Every collective of the default process
  group is given a timeout (:func:`dist_timeout`), after which it raises;
  the rank exits non-zero and torchrun then terminates the remaining ranks.
* **The launcher dies** (``kill -9`` of ``tools/dist_train.sh``/torchrun, a
  closed terminal): without it nobody stops the ranks, which run on as
  orphans. :func:`die_with_parent` asks the Linux kernel to kill a rank when
  its parent process exits (``prctl(PR_SET_PDEATHSIG)``).
"""
import ctypes
import ctypes.util
import datetime
import os
import signal
import sys
from typing import Union

__all__ = [
    'DEFAULT_DIST_TIMEOUT', 'TIMEOUT_ENV', 'LAUNCHER_PID_ENV', 'dist_timeout',
    'die_with_parent'
]

#: Default collective timeout in seconds (torch's own default for gloo and
#: NCCL; long enough for slow checkpoint writes and evaluation on rank 0).
DEFAULT_DIST_TIMEOUT = 1800

#: Environment variable overriding the default timeout (seconds).
TIMEOUT_ENV = 'CRIBO_DIST_TIMEOUT'

#: Set by ``tools/dist_train.sh`` to the process id of torchrun, so a rank
#: can tell whether its launcher already died before it asked to follow it.
LAUNCHER_PID_ENV = 'CRIBO_LAUNCHER_PID'

_PR_SET_PDEATHSIG = 1


def dist_timeout(
    configured: Union[None, int, float, datetime.timedelta] = None
) -> datetime.timedelta:
    """Timeout of the collectives of the default process group.

    Precedence: ``configured`` (the config key ``env_cfg.dist_cfg.timeout``,
    in seconds), then the environment variable ``CRIBO_DIST_TIMEOUT``
    (seconds), then :data:`DEFAULT_DIST_TIMEOUT`.

    Args:
        configured (int | float | timedelta, optional): The timeout given in
            the config (mmengine converts seconds to a timedelta).

    Returns:
        datetime.timedelta: A positive timeout.

    Raises:
        ValueError: A non-positive or non-numeric timeout, naming where it
            came from.
    """
    if configured is not None:
        source, value = 'env_cfg.dist_cfg.timeout', configured
    elif os.environ.get(TIMEOUT_ENV, '').strip():
        source, value = TIMEOUT_ENV, os.environ[TIMEOUT_ENV].strip()
    else:
        return datetime.timedelta(seconds=DEFAULT_DIST_TIMEOUT)
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    else:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = float('nan')
    if not seconds > 0 or seconds == float('inf'):
        raise ValueError(f'{source}={value!r}: the distributed timeout must '
                         'be a positive number of seconds')
    return datetime.timedelta(seconds=seconds)


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Have the kernel send ``sig`` to this process when its parent exits.

    Meant for the ranks started by torchrun: if torchrun itself is killed
    (``SIGKILL`` leaves it no chance to stop its children), every rank dies
    with it instead of running on as an orphan. ``SIGKILL`` is used because
    a rank blocked in a collective cannot run a Python signal handler.
    If the launcher named by ``CRIBO_LAUNCHER_PID`` is already gone when this
    is called (it died during start-up), the process exits at once.

    Linux only; elsewhere nothing is done.

    Args:
        sig (int): Signal to receive. Defaults to ``SIGKILL``.

    Returns:
        bool: Whether the request was registered.
    """
    if not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6',
                           use_errno=True)
    except OSError:
        return False
    if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    launcher = os.environ.get(LAUNCHER_PID_ENV, '')
    if launcher.isdigit() and os.getppid() != int(launcher):
        # the launcher died before the request was registered
        os.kill(os.getpid(), sig)
    return True
