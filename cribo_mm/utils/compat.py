# Copyright (c) cribo-mm contributors. All rights reserved.
"""Compatibility fixes for the pinned OpenMMLab stack on recent torch/numpy.

Every fix of an upstream incompatibility lives here and nowhere else. They are
applied once, when :mod:`cribo_mm` is imported; installed packages are never
edited on disk.

Fixes:

* **torch >= 2.6 defaults ``torch.load(weights_only=True)``.** mmengine 0.10.7
  loads local checkpoints with a bare ``torch.load``; its Runner checkpoints
  pickle ``HistoryBuffer`` objects and numpy scalars in ``message_hub``, so
  ``--resume``, ``load_from`` and ``init_cfg=dict(type='Pretrained')`` fail
  with ``UnpicklingError``. mmengine's own fix (open-mmlab/mmengine#1670,
  ``weights_only=False`` for local files) is only on its main branch; we
  register the same behaviour for local paths. Files downloaded from
  elsewhere should go through :mod:`tools.model_converters`, which load with
  ``weights_only=True`` and an explicit allow-list.
* **Distributed training on CPU.** mmengine 0.10.7 calls
  ``torch.cuda.set_device`` unconditionally when launched by torchrun, so
  ``tools/dist_train.sh`` dies on a machine without CUDA. Without CUDA we
  initialise the process group directly, with gloo (NCCL needs CUDA). The
  Runner then passes ``device_ids=[LOCAL_RANK]`` to DDP, which torch
  rejects for a CPU module; those ids are dropped for CPU modules.
* **numpy 2.** mmengine 0.10.7, mmcv 2.1.0 (built from source against the
  installed numpy), mmpretrain 1.2.0 and mmseg 1.2.2 run unchanged on numpy
  2.x; the only numpy-2 hazard in this stack is pickled numpy scalars in
  checkpoints, whose module path moved from ``numpy.core`` to
  ``numpy._core``. Unpickling goes through numpy's own alias modules, so
  checkpoints written under numpy 1.x resume under 2.x and vice versa.
"""
import inspect
import os
import os.path as osp

import mmengine.dist.utils as mmengine_dist_utils
import torch
import torch.distributed as torch_dist
from mmengine.model.wrappers import MMDistributedDataParallel
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = [
    'init_dist_pytorch', 'load_local_checkpoint',
    'torch_load_supports_weights_only'
]


def torch_load_supports_weights_only() -> bool:
    """Whether the installed ``torch.load`` accepts ``weights_only``."""
    return 'weights_only' in inspect.signature(torch.load).parameters


def load_local_checkpoint(filename: str, map_location=None):
    """Load a trusted local mmengine checkpoint with full unpickling.

    Args:
        filename (str): Path of the checkpoint file (``~`` is expanded).
        map_location (str | torch.device, optional): As for ``torch.load``.

    Returns:
        dict: The loaded checkpoint.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    if torch_load_supports_weights_only():
        return torch.load(
            filename, map_location=map_location, weights_only=False)
    return torch.load(filename, map_location=map_location)


_init_dist_pytorch = mmengine_dist_utils._init_dist_pytorch


def init_dist_pytorch(backend: str = 'nccl',
                      init_backend: str = 'torch',
                      **kwargs) -> None:
    """mmengine's torchrun initialisation, usable without CUDA.

    Args:
        backend (str): Requested backend; ``'nccl'`` becomes ``'gloo'`` when
            CUDA is unavailable.
        init_backend (str): As in mmengine. Defaults to ``'torch'``.
        **kwargs: Passed on to ``init_process_group``.
    """
    if torch.cuda.is_available() or init_backend != 'torch':
        return _init_dist_pytorch(backend, init_backend=init_backend,
                                  **kwargs)
    torch_dist.init_process_group(
        backend='gloo' if backend == 'nccl' else backend,
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        **kwargs)


_ddp_init = MMDistributedDataParallel.__init__


def _cpu_aware_ddp_init(self, module, *args, **kwargs) -> None:
    devices = {p.device.type for p in module.parameters()}
    if devices == {'cpu'}:
        kwargs.pop('device_ids', None)
        kwargs.pop('output_device', None)
    _ddp_init(self, module, *args, **kwargs)


def _apply() -> None:
    # '' is the scheme mmengine uses for plain local paths.
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_local_checkpoint, force=True)
    mmengine_dist_utils._init_dist_pytorch = init_dist_pytorch
    MMDistributedDataParallel.__init__ = _cpu_aware_ddp_init


_apply()
