# Copyright (c) cribo-mm contributors. All rights reserved.
"""Iteration timer whose ETA leaves out the start-up iterations."""
import time
from typing import Optional, Sequence

from mmengine.hooks import IterTimerHook

from cribo_mm.registry import HOOKS

__all__ = ['CrIBoIterTimerHook']


@HOOKS.register_module()
class CrIBoIterTimerHook(IterTimerHook):
    """mmengine's ``IterTimerHook`` with an ETA that starts after warm-up.

    mmengine averages the duration of every training iteration of the run,
    the first included. That one also pays for one-off start-up work (data
    loader workers, the first batches, allocator and thread-pool warm-up),
    so on a short CPU run the first ETA printed is several times too long
    (12 min for a 2.8 min run). Here the first ``warmup_iters`` iterations
    of each run (after a resume too) are timed and logged as ``time`` as
    usual but left out of the average behind ``eta``; no ETA is published
    before they are done. Validation and test timing are mmengine's.

    Args:
        warmup_iters (int): Iterations of each run left out of the ETA.
            Defaults to 1.
    """

    def __init__(self, warmup_iters: int = 1) -> None:
        super().__init__()
        if warmup_iters < 0:
            raise ValueError(
                f'warmup_iters must be >= 0, got {warmup_iters!r}')
        self.warmup_iters = int(warmup_iters)

    def before_train(self, runner) -> None:
        """Start counting the run's iterations from the current one."""
        super().before_train(runner)
        self.time_sec_tot = 0.

    def _after_iter(self,
                    runner,
                    batch_idx: int,
                    data_batch: Optional[Sequence] = None,
                    outputs=None,
                    mode: str = 'train') -> None:
        """Log the iteration time; update the ETA after warm-up."""
        if mode != 'train':
            super()._after_iter(runner, batch_idx, data_batch, outputs, mode)
            return
        now = time.time()
        iter_time = now - self.t
        self.t = now
        runner.message_hub.update_scalar('train/time', iter_time)
        done = runner.iter - self.start_iter + 1  # iterations of this run
        if done <= self.warmup_iters:
            return
        self.time_sec_tot += iter_time
        average = self.time_sec_tot / (done - self.warmup_iters)
        runner.message_hub.update_info(
            'eta', average * (runner.max_iters - runner.iter - 1))
