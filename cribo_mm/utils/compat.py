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
* **numpy 2.** mmengine 0.10.7, mmcv 2.1.0 (built from source against the
  installed numpy), mmpretrain 1.2.0 and mmseg 1.2.2 run unchanged on numpy
  2.x; the only numpy-2 hazard in this stack is pickled numpy scalars in
  checkpoints, whose module path moved from ``numpy.core`` to
  ``numpy._core``. Unpickling goes through numpy's own alias modules, so
  checkpoints written under numpy 1.x resume under 2.x and vice versa.
"""
import inspect
import os.path as osp

import torch
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = ['torch_load_supports_weights_only', 'load_local_checkpoint']


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


def _apply() -> None:
    # '' is the scheme mmengine uses for plain local paths.
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_local_checkpoint, force=True)


_apply()
