# Copyright (c) cribo-mm contributors. All rights reserved.
"""Wall-clock time of the named parts of a training step, off by default.

The model marks its parts with ``with profile_part('clustering'):``; that is
a shared no-op context unless a :class:`StepProfiler` is active, so
production runs pay one global lookup per part. ``benchmarks/train_step.py``
activates one to print the per-part table::

    with StepProfiler(device) as prof:
        losses = model.loss(inputs, data_samples)
    prof.times  # {'teacher_forward': 0.41, 'clustering': 0.05, ...}
    prof.cpu_times  # the same in CPU seconds of this process

CPU time counts the work of this process only (all its threads), so it
varies less than wall-clock time on a machine shared with other jobs.

Each part is also a ``torch.profiler.record_function`` range, so the names
appear in ``torch.profiler`` traces taken while a profiler is active.
"""
import contextlib
import time
from collections import defaultdict
from typing import ContextManager, Dict, Iterator, Optional, Union

import torch

__all__ = ['StepProfiler', 'profile_part']

_NULL = contextlib.nullcontext()
_active: Optional['StepProfiler'] = None


class StepProfiler:
    """Accumulate seconds per part while active (a context manager).

    Args:
        device (torch.device | str): Device the timed work runs on; CUDA is
            synchronised at both ends of every part so that the times are
            those of the kernels, not of their launches. Defaults to 'cpu'.
    """

    def __init__(self, device: Union[torch.device, str] = 'cpu') -> None:
        self.device = torch.device(device)
        self.times: Dict[str, float] = defaultdict(float)
        self.cpu_times: Dict[str, float] = defaultdict(float)
        self.calls: Dict[str, int] = defaultdict(int)
        self._previous: Optional[StepProfiler] = None

    def _sync(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        """Time one occurrence of the part ``name`` (added to its total).

        Args:
            name (str): Part name.
        """
        self._sync()
        start, cpu_start = time.perf_counter(), time.process_time()
        with torch.profiler.record_function(name):
            yield
        self._sync()
        self.times[name] += time.perf_counter() - start
        self.cpu_times[name] += time.process_time() - cpu_start
        self.calls[name] += 1

    def reset(self) -> None:
        """Forget the accumulated times."""
        self.times.clear()
        self.cpu_times.clear()
        self.calls.clear()

    def __enter__(self) -> 'StepProfiler':
        global _active
        self._previous, _active = _active, self
        return self

    def __exit__(self, *exc) -> None:
        global _active
        _active = self._previous


def profile_part(name: str) -> ContextManager:
    """Mark a part of the step for the active :class:`StepProfiler`.

    Args:
        name (str): Part name (``'teacher_forward'``, ``'clustering'``, ...).

    Returns:
        ContextManager: The profiler's timer, or a shared no-op context when
        no profiler is active.
    """
    if _active is None:
        return _NULL
    return _active.part(name)
