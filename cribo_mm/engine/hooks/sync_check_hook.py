# Copyright (c) cribo-mm contributors. All rights reserved.
import json
import os.path as osp

import torch
from mmengine.dist import all_gather, get_rank, get_world_size
from mmengine.hooks import Hook
from mmpretrain.utils import get_ori_model

from cribo_mm.registry import HOOKS


@HOOKS.register_module()
class CrIBoSyncCheckHook(Hook):
    """Check that state meant to be identical on all ranks really is.

    Every ``interval`` iterations it compares, across ranks, a fingerprint
    of the memory bank buffers and of the loss centres (sum, sum of squares
    and a position-weighted sum in float64, which differ for any realistic
    divergence) and raises ``RuntimeError`` naming the buffer that differs.
    Use it to debug distributed set-ups; it costs one small all-gather.

    Args:
        interval (int): Check every ``interval`` iterations. Defaults to 1.
        record (bool): Write the number of checks passed to
            ``<work_dir>/sync_check.json`` on rank 0 at the end.
            Defaults to False.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 1, record: bool = False) -> None:
        self.interval = interval
        self.record = record
        self.checks = 0

    @staticmethod
    def _fingerprint(tensor: torch.Tensor) -> torch.Tensor:
        flat = tensor.detach().double().flatten()
        weights = torch.arange(
            1, flat.numel() + 1, dtype=torch.float64, device=flat.device)
        return torch.stack([flat.sum(), (flat * flat).sum(),
                            (flat * weights).sum()])

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if not self.every_n_train_iters(runner, self.interval):
            return
        model = get_ori_model(runner.model)
        named = [(f'memory_bank.{n}', b)
                 for n, b in model.memory_bank.named_buffers()]
        named += [('head.center', model.head.center),
                  ('head.center_c', model.head.center_c)]
        local = torch.stack([self._fingerprint(b) for _, b in named])
        gathered = all_gather(local)
        for rank, other in enumerate(gathered):
            diff = (other - local).abs().amax(dim=1)
            bad = [name for (name, _), d in zip(named, diff.tolist())
                   if d > 0]
            if bad:
                raise RuntimeError(
                    f'iteration {runner.iter}: {", ".join(bad)} differ '
                    f'between rank {get_rank()} and rank {rank}')
        self.checks += 1

    def after_train(self, runner) -> None:
        if self.record and get_rank() == 0:
            with open(osp.join(runner.work_dir, 'sync_check.json'), 'w') as f:
                json.dump(dict(checks=self.checks,
                               world_size=get_world_size()), f)
