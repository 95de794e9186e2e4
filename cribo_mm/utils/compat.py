# Copyright (c) cribo-mm contributors. All rights reserved.
"""Compatibility fixes for the pinned OpenMMLab stack on recent torch/numpy.

Every fix of an upstream incompatibility lives here and nowhere else. They are
applied once, when :mod:`cribo_mm` is imported; installed packages are never
edited on disk.

Fixes:

* **Checkpoint loading goes through our policy.** mmengine 0.10.7 loads
  local checkpoints with a bare ``torch.load`` (which on torch >= 2.6 refuses
  its own Runner checkpoints, and on older torch unpickles anything) and
  URLs with ``torch.hub.load_state_dict_from_url`` (full unpickling). Local
  paths and ``http(s)://`` are registered in ``CheckpointLoader`` (and
  ``load_from_local`` / ``load_from_http`` replaced for the loaders that
  call them directly) with :func:`load_local_checkpoint` /
  :func:`load_http_checkpoint`, which apply
  :func:`cribo_mm.utils.checkpoint_io.load_checkpoint_file`; so
  ``--resume``, ``load_from`` and ``init_cfg=dict(type='Pretrained')`` (also
  from MMSegmentation configs) load under the allow-list, and fully only with
  ``CRIBO_UNSAFE_LOAD=1``.
* **Weights that do not fit are an error.** mmengine's ``load_state_dict``
  only logs a warning when no key of the checkpoint matches the model, or
  every tensor has another shape, and training goes on from a random
  network. It is wrapped by :func:`load_state_dict_checked`, which raises
  :class:`~cribo_mm.utils.weight_fit.CheckpointMismatchError` first (see
  :func:`~cribo_mm.utils.weight_fit.check_state_dict_fit`).
* **Distributed training on CPU.** mmengine 0.10.7 calls
  ``torch.cuda.set_device`` unconditionally when launched by torchrun, so
  ``tools/dist_train.sh`` dies on a machine without CUDA. Without CUDA we
  initialise the process group directly, with gloo (NCCL needs CUDA). The
  Runner then passes ``device_ids=[LOCAL_RANK]`` to DDP, which torch
  rejects for a CPU module; those ids are dropped for CPU modules.
* **Bounded collectives.** mmengine initialises the process group with
  torch's default timeout unless ``env_cfg.dist_cfg.timeout`` is set; every
  launcher (pytorch, slurm, mpi) now gets
  :func:`cribo_mm.utils.dist_faults.dist_timeout` (config key, then the
  ``CRIBO_DIST_TIMEOUT`` environment variable, then 30 min), so a stopped
  rank makes the others raise instead of waiting forever.
* **Data loaders without a batch.** A dataset smaller than one batch with
  ``drop_last=True`` gives an epoch of zero iterations, which mmengine
  reports as ``epoch_length must be a positive integer``; every loader the
  Runner builds is checked by
  :func:`cribo_mm.utils.dataloader_check.check_loader_not_empty`.
* **Symbolic-link loops in scanned folders.** mmengine's recursive
  ``LocalBackend.list_dir_or_file`` (mmpretrain's ``ImageNet`` scan) follows
  a link loop until ``OSError: Too many levels of symbolic links``; it is
  replaced by :func:`cribo_mm.utils.listing.list_dir_or_file`, which enters
  every real folder once.
* **Skipped samples are invisible to the Runner.** Every Runner gets
  :class:`cribo_mm.engine.hooks.CrIBoSkippedImagesHook` (unless its config
  already has one), so images skipped with ``skip_unreadable=True`` by any
  worker of any rank are summarised once per epoch; it is silent while
  nothing is skipped.
* **numpy 2.** mmcv 2.1.0's ``adjust_hue`` computes its shift as
  ``np.uint8(hue_factor * 255)``, which numpy 2 rejects for negative factors
  (``OverflowError``), so mmpretrain's ``ColorJitter(hue=...)`` crashes about
  half of the time. ``mmcv.adjust_hue`` is replaced by :func:`adjust_hue`,
  the same rotation with numpy-2-safe arithmetic (for every backend; the
  Pillow backend's hue differs from it by rounding only). Otherwise
  mmengine 0.10.7, mmcv 2.1.0, mmpretrain 1.2.0 and mmseg 1.2.2 run
  unchanged on numpy 2; pickled numpy scalars in checkpoints unpickle
  through numpy's own alias modules across numpy 1.x and 2.x.
* **Expected warnings.** The frozen EMA teacher (one optimizer-constructor
  warning per parameter), mmengine's own use of its deprecated
  ``FileClient``, and ``pin_memory`` without an accelerator are silenced by
  exact message (:mod:`cribo_mm.utils.log_filters`); everything else shows.
"""
import functools
import os
import os.path as osp
from typing import Optional

import cv2
import mmcv
import mmcv.image
import mmcv.image.photometric
import mmengine.dist.utils as mmengine_dist_utils
import mmengine.runner.checkpoint as mmengine_checkpoint
import numpy as np
import torch
import torch.distributed as torch_dist
from mmengine.fileio.backends import LocalBackend
from mmengine.model.wrappers import MMDistributedDataParallel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader

from .checkpoint_io import (CheckpointError, UnsafeCheckpointError,
                            load_checkpoint_file)
from .dataloader_check import check_loader_not_empty
from .dist_faults import dist_timeout
from .listing import list_dir_or_file
from .log_filters import install_log_filters
from .weight_fit import check_state_dict_fit

__all__ = [
    'adjust_hue', 'init_dist_pytorch', 'load_local_checkpoint',
    'load_http_checkpoint', 'load_storage_checkpoint',
    'load_state_dict_checked'
]


def load_local_checkpoint(filename: str, map_location=None):
    """mmengine's loader for local paths, under the project's policy.

    Args:
        filename (str): Path of the checkpoint file (``~`` is expanded).
        map_location (str | torch.device, optional): As for ``torch.load``.

    Returns:
        Any: The loaded checkpoint.
    """
    global _last_loaded
    _last_loaded = osp.expanduser(str(filename))
    return load_checkpoint_file(filename, map_location=map_location)


def load_http_checkpoint(filename: str,
                         map_location=None,
                         model_dir: Optional[str] = None,
                         progress: bool = False):
    """mmengine's loader for ``http(s)://`` URLs, under the project's policy.

    The file is downloaded into ``model_dir`` (default: torch hub's
    ``checkpoints`` folder; rank 0 first, then the ranks that do not see it,
    e.g. on other nodes) and then loaded with :func:`load_checkpoint_file`.

    Args:
        filename (str): The URL.
        map_location (str | torch.device, optional): As for ``torch.load``.
        model_dir (str, optional): Download folder.
        progress (bool): Show a download progress bar.

    Returns:
        Any: The loaded checkpoint.
    """
    from urllib.parse import urlparse

    from mmengine.dist import get_dist_info
    folder = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    path = osp.join(folder, osp.basename(urlparse(filename).path))

    def download():
        if not osp.isfile(path):
            os.makedirs(folder, exist_ok=True)
            torch.hub.download_url_to_file(filename, path, progress=progress)

    rank, world_size = get_dist_info()
    if rank == 0:
        download()
    if world_size > 1:
        torch_dist.barrier()
        if rank > 0:
            download()
    return load_local_checkpoint(path, map_location=map_location)


def load_storage_checkpoint(filename: str,
                            map_location=None,
                            backend: str = 'petrel'):
    """mmengine's loader for object storage (``s3://``, ``petrel://``),
    under the project's policy: the bytes go to a temporary file, which
    :func:`load_checkpoint_file` opens.

    Args:
        filename (str): The object's address.
        map_location (str | torch.device, optional): As for ``torch.load``.
        backend (str): mmengine file backend. Defaults to ``'petrel'``.

    Returns:
        Any: The loaded checkpoint.
    """
    import tempfile

    from mmengine.fileio import get_file_backend
    global _last_loaded
    data = get_file_backend(
        filename, backend_args={'backend': backend}).get(filename)
    with tempfile.TemporaryDirectory() as folder:
        path = osp.join(folder, osp.basename(filename) or 'checkpoint.pth')
        with open(path, 'wb') as f:
            f.write(data)
        try:
            checkpoint = load_local_checkpoint(
                path, map_location=map_location)
        except CheckpointError as e:  # name the object, not the copy
            message = str(e).replace(path, filename)
            if isinstance(e, UnsafeCheckpointError):
                raise UnsafeCheckpointError(message, e.globals) from None
            raise type(e)(message) from None
    _last_loaded = filename  # fit errors name the object too
    return checkpoint


#: The file most recently loaded through mmengine, named in fit errors.
_last_loaded: Optional[str] = None
_mmengine_load_state_dict = mmengine_checkpoint.load_state_dict


def load_state_dict_checked(module, state_dict, strict=False, logger=None):
    """mmengine's ``load_state_dict`` that first refuses weights that do not
    fit (:func:`check_state_dict_fit`); then loads as mmengine does.

    Args:
        module (nn.Module): The model, possibly wrapped (DDP, TTA).
        state_dict (Mapping): The weights.
        strict (bool): As in mmengine.
        logger: As in mmengine.
    """
    from mmengine.model import BaseTTAModel, is_model_wrapper

    # unwrapped as mmengine does (DDP; the test-time-augmentation wrapper)
    wrapped = is_model_wrapper(module) or isinstance(module, BaseTTAModel)
    target = module.module if wrapped else module
    check_state_dict_fit(target, state_dict, source=_last_loaded)
    return _mmengine_load_state_dict(module, state_dict, strict, logger)


_init_dist_pytorch = mmengine_dist_utils._init_dist_pytorch
_init_dist_slurm = mmengine_dist_utils._init_dist_slurm
_init_dist_mpi = mmengine_dist_utils._init_dist_mpi


def _with_dist_timeout(init_fn):
    """Wrap an mmengine launcher initialisation to always set a timeout."""

    @functools.wraps(init_fn)
    def init(*args, **kwargs):
        kwargs['timeout'] = dist_timeout(kwargs.get('timeout'))
        return init_fn(*args, **kwargs)

    return init


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


def adjust_hue(img: np.ndarray, hue_factor: float) -> np.ndarray:
    """Rotate the hue of a uint8 BGR image (numpy-2 safe).

    Same result as ``mmcv.adjust_hue(img, hue_factor, backend='cv2')`` under
    numpy 1: the hue channel of ``HSV_FULL`` (0..255) is shifted by
    ``int(hue_factor * 255)`` modulo 256. mmcv 2.1.0 computes the shift as
    ``np.uint8(hue_factor * 255)``, which numpy 2 rejects for negative
    factors (``OverflowError``).

    Args:
        img (np.ndarray): ``(H, W, 3)`` uint8 BGR image.
        hue_factor (float): Shift in [-0.5, 0.5] of a full hue turn.

    Returns:
        np.ndarray: The adjusted ``(H, W, 3)`` uint8 BGR image.
    """
    if not -0.5 <= hue_factor <= 0.5:
        raise ValueError(f'hue_factor {hue_factor} is not in [-0.5, 0.5]')
    shift = int(hue_factor * 255)
    if shift == 0:
        return img
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV_FULL)
    table = ((np.arange(256) + shift) % 256).astype(np.uint8)
    hsv[..., 0] = cv2.LUT(hsv[..., 0], table)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR_FULL)


# mmcv's own implementation, kept for comparison in the tests.
MMCV_ADJUST_HUE = mmcv.image.photometric.adjust_hue


def _mmcv_adjust_hue(img: np.ndarray,
                     hue_factor: float,
                     backend=None) -> np.ndarray:
    """Drop-in for ``mmcv.adjust_hue`` (``backend`` is accepted and
    ignored)."""
    return adjust_hue(img, hue_factor)


_build_dataloader = Runner.build_dataloader


def _checked_build_dataloader(*args, **kwargs):
    """``Runner.build_dataloader`` that refuses a loader without a batch."""
    loader = _build_dataloader(*args, **kwargs)
    check_loader_not_empty(loader)
    return loader


_register_custom_hooks = Runner.register_custom_hooks


def _register_custom_hooks_and_skip_summary(self, hooks) -> None:
    """``Runner.register_custom_hooks`` plus the skipped-images summary."""
    _register_custom_hooks(self, hooks)
    from cribo_mm.engine.hooks import CrIBoSkippedImagesHook
    if not any(isinstance(h, CrIBoSkippedImagesHook) for h in self._hooks):
        self.register_hook(CrIBoSkippedImagesHook())


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
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'),
        loader=load_http_checkpoint,
        force=True)
    CheckpointLoader.register_scheme(
        prefixes=[r'(\S+\:)?s3://', r'(\S+\:)?petrel://'],
        loader=load_storage_checkpoint,
        force=True)
    mmengine_checkpoint.load_from_local = load_local_checkpoint
    mmengine_checkpoint.load_from_http = load_http_checkpoint
    mmengine_checkpoint.load_state_dict = load_state_dict_checked
    mmengine_dist_utils._init_dist_pytorch = _with_dist_timeout(
        init_dist_pytorch)
    mmengine_dist_utils._init_dist_slurm = _with_dist_timeout(
        _init_dist_slurm)
    mmengine_dist_utils._init_dist_mpi = _with_dist_timeout(_init_dist_mpi)
    Runner.build_dataloader = staticmethod(_checked_build_dataloader)
    LocalBackend.list_dir_or_file = list_dir_or_file
    Runner.register_custom_hooks = _register_custom_hooks_and_skip_summary
    MMDistributedDataParallel.__init__ = _cpu_aware_ddp_init
    for module in (mmcv, mmcv.image, mmcv.image.photometric):
        module.adjust_hue = _mmcv_adjust_hue
    install_log_filters()  # the expected, non-actionable upstream warnings


_apply()
