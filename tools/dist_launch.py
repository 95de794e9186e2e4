# Copyright (c) cribo-mm contributors. All rights reserved.
"""torchrun with a bounded teardown after a failed rank.

Same command line as ``python -m torch.distributed.run`` (used by
``tools/dist_train.sh``). One difference: when a rank fails, torchrun stops
the others with ``SIGTERM`` and waits a fixed 30 s before ``SIGKILL`` (its
process context closes with the default timeout; ``--shutdown-timeout``
only applies to some of its code paths). A rank that is stopped
(``SIGSTOP``, a frozen VM) or ignores ``SIGTERM`` therefore outlives the
failure by 30 s. Here every such wait is ``TORCH_ELASTIC_SHUTDOWN_TIMEOUT``
seconds (default 30, as torchrun's), so a job whose collective timed out
ends after that timeout plus this grace.
"""
import os
import sys

from torch.distributed.elastic.multiprocessing.api import PContext


def _grace() -> float:
    value = os.environ.get('TORCH_ELASTIC_SHUTDOWN_TIMEOUT', '30')
    try:
        grace = float(value)
    except ValueError:
        grace = -1.
    if not grace >= 0:
        raise SystemExit(f'TORCH_ELASTIC_SHUTDOWN_TIMEOUT={value!r}: expected '
                         'a non-negative number of seconds')
    return grace


_close = PContext.close


def _close_with_grace(self, death_sig=None, timeout=None):
    """``PContext.close`` whose wait before ``SIGKILL`` is the grace."""
    return _close(self, death_sig, _grace())


def main() -> None:
    _grace()  # fail early on a bad value
    PContext.close = _close_with_grace
    from torch.distributed.run import main as torchrun_main
    sys.argv[0] = 'torchrun'
    torchrun_main()


if __name__ == '__main__':
    main()
