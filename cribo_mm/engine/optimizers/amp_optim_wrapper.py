# Copyright (c) cribo-mm contributors. All rights reserved.
"""Mixed-precision optimizer wrapper for CPU (bf16) and GPU (fp16 / bf16)."""
from contextlib import ExitStack, contextmanager
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper

from cribo_mm.registry import OPTIM_WRAPPERS
from cribo_mm.utils.dtypes import parse_float_dtype

_DEVICE_TYPES = ('auto', 'cuda', 'cpu')


def resolve_amp_settings(dtype: Union[str, torch.dtype, None] = 'auto',
                         device_type: str = 'auto'):
    """The autocast device type and dtype that a config asks for.

    Args:
        dtype (str | torch.dtype | None): ``'auto'`` (or None): float16 on
            CUDA, bfloat16 on a CPU; ``'float16'`` / ``'bfloat16'`` (or the
            torch dtypes) force one.
        device_type (str): ``'auto'`` (CUDA when available, else CPU),
            ``'cuda'`` or ``'cpu'``.

    Returns:
        tuple[str, torch.dtype]: The device type and the autocast dtype.
    """
    if device_type not in _DEVICE_TYPES:
        raise ValueError(f'optim_wrapper.device_type must be one of '
                         f'{_DEVICE_TYPES}, got {device_type!r}')
    if device_type == 'auto':
        device_type = 'cuda' if torch.cuda.is_available() else 'cpu'
    elif device_type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError("optim_wrapper.device_type='cuda' but CUDA is not "
                           "available; use device_type='auto' (bf16 on the "
                           'CPU)')
    if dtype is None or dtype == 'auto':
        dtype = torch.float16 if device_type == 'cuda' else torch.bfloat16
    else:
        dtype = parse_float_dtype(dtype, 'optim_wrapper.dtype ("auto" or a '
                                  'mixed-precision format)')
    if dtype == torch.float32:
        raise ValueError('optim_wrapper.dtype must be float16 or bfloat16 '
                         '(mixed precision), got float32; use OptimWrapper '
                         'for float32 training')
    if dtype == torch.float16 and device_type == 'cpu':
        raise ValueError(
            "optim_wrapper.dtype='float16' needs a GPU (fp16 autocast with "
            'loss scaling); on a CPU use dtype="bfloat16" (or "auto")')
    return device_type, dtype


def _grad_scaler(device_type: str, loss_scale: Union[str, float, dict]):
    """A ``GradScaler`` for ``device_type`` from mmengine's ``loss_scale``."""
    if loss_scale == 'dynamic':
        kwargs = {}
    elif isinstance(loss_scale, (int, float)) and \
            not isinstance(loss_scale, bool):
        kwargs = dict(init_scale=float(loss_scale))
    elif isinstance(loss_scale, dict):
        kwargs = dict(loss_scale)
    else:
        raise TypeError('optim_wrapper.loss_scale must be "dynamic", a float '
                        f'or a dict of GradScaler arguments, got '
                        f'{loss_scale!r}')
    amp_scaler = getattr(getattr(torch, 'amp', None), 'GradScaler', None)
    if amp_scaler is not None:  # torch >= 2.3
        return amp_scaler(device_type, **kwargs)
    return torch.cuda.amp.GradScaler(**kwargs)


@OPTIM_WRAPPERS.register_module()
class CrIBoAmpOptimWrapper(OptimWrapper):
    """Automatic mixed precision on a CPU or a GPU.

    The forward pass (``optim_context``) runs under ``torch.autocast`` of
    the training device:

    * bfloat16 (the default on a CPU, ``dtype='bfloat16'`` on a GPU): the
      exponent range of float32, so no loss scaling; parameters, gradients
      and optimizer states stay float32;
    * float16 (the default on a GPU): with a ``GradScaler`` (dynamic by
      default), as mmengine's ``AmpOptimWrapper``, and the same checkpoint
      entry ``loss_scaler``.

    mmengine's ``AmpOptimWrapper`` refuses a machine without a GPU; this
    wrapper is what ``tools/train.py --amp`` selects. CrIBo's clustering,
    Sinkhorn, memory-bank matching, losses and centres run in float32 inside
    (:func:`cribo_mm.models.utils.precision.fp32_region`).

    Args:
        optimizer (Optimizer): The optimizer.
        dtype (str | torch.dtype, optional): ``'auto'`` (default: float16 on
            CUDA, bfloat16 on a CPU), ``'float16'`` or ``'bfloat16'``.
        device_type (str): Autocast device type, ``'auto'`` (default: CUDA
            when available, else CPU), ``'cuda'`` or ``'cpu'``.
        loss_scale (str | float | dict | None): Loss scaling of float16
            training: ``'dynamic'`` (default), a static scale, or
            ``GradScaler`` arguments. bfloat16 never scales: only the
            default ``'dynamic'`` or None are accepted with it.
        **kwargs: ``OptimWrapper`` arguments (``accumulative_counts``,
            ``clip_grad``).
    """

    def __init__(self,
                 optimizer: torch.optim.Optimizer,
                 dtype: Union[str, torch.dtype, None] = 'auto',
                 device_type: str = 'auto',
                 loss_scale: Union[str, float, dict, None] = 'dynamic',
                 **kwargs) -> None:
        super().__init__(optimizer=optimizer, **kwargs)
        self.device_type, self.cast_dtype = resolve_amp_settings(
            dtype, device_type)
        self.loss_scaler = None
        # a static scale is re-imposed after every step, as in mmengine
        self._static_scale = None
        if self.cast_dtype == torch.float16 and loss_scale is not None:
            self.loss_scaler = _grad_scaler(self.device_type, loss_scale)
            if not isinstance(loss_scale, (str, dict)):
                self._static_scale = float(loss_scale)
        elif self.cast_dtype == torch.bfloat16 and \
                loss_scale not in ('dynamic', None):
            raise ValueError(
                'optim_wrapper.loss_scale is for float16 training; bfloat16 '
                f'has the range of float32 and is never scaled (got '
                f'loss_scale={loss_scale!r})')
        print_log(
            f'{type(self).__name__}: {self.precision} autocast on '
            f'{self.device_type}', logger='current')

    @property
    def precision(self) -> str:
        """str: ``'bf16'``, ``'fp16 (dynamic loss scale)'`` or
        ``'fp16 (no loss scale)'``, for logs."""
        if self.cast_dtype == torch.bfloat16:
            return 'bf16'
        if self.loss_scaler is None:
            return 'fp16 (no loss scale)'
        return 'fp16 ({} loss scale)'.format(
            'dynamic' if self._static_scale is None else 'static')

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        """Back-propagate ``loss`` (scaled first in float16 training).

        Args:
            loss (Tensor): The loss of the iteration.
            **kwargs: Arguments of :meth:`torch.Tensor.backward`.
        """
        if self.loss_scaler is not None:
            loss = self.loss_scaler.scale(loss)
        loss.backward(**kwargs)
        self._inner_count += 1

    def step(self, **kwargs) -> None:
        """Clip (after unscaling) and update the parameters.

        A float16 step whose gradients hold inf/NaN is skipped by the
        scaler, which then lowers the scale.

        Args:
            **kwargs: Arguments of :meth:`torch.optim.Optimizer.step`.
        """
        if self.loss_scaler is None:
            super().step(**kwargs)
            return
        if self.clip_grad_kwargs:
            self.loss_scaler.unscale_(self.optimizer)
            self._clip_grad()
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update(self._static_scale)

    def state_dict(self) -> dict:
        """The optimizer state, plus ``loss_scaler`` in float16 training.

        Returns:
            dict: The state dict.
        """
        state = super().state_dict()
        if self.loss_scaler is not None:
            state['loss_scaler'] = self.loss_scaler.state_dict()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state saved by this wrapper, ``OptimWrapper`` or
        ``AmpOptimWrapper``.

        A saved loss scale is restored in float16 training and ignored in
        bfloat16 training (e.g. a GPU fp16 run resumed on a CPU).

        Args:
            state_dict (dict): The state dict.
        """
        state_dict = dict(state_dict)
        scaler_state = state_dict.pop('loss_scaler', None)
        if scaler_state is not None and self.loss_scaler is not None:
            self.loss_scaler.load_state_dict(scaler_state)
        super().load_state_dict(state_dict)

    @contextmanager
    def optim_context(self, model: nn.Module):
        """The parent's context (gradient accumulation) plus autocast.

        Args:
            model (nn.Module): The training model.
        """
        with ExitStack() as stack:
            stack.enter_context(super().optim_context(model))
            stack.enter_context(
                torch.autocast(
                    device_type=self.device_type, dtype=self.cast_dtype))
            yield


def enable_amp(optim_wrapper_cfg: dict) -> str:
    """Switch an ``optim_wrapper`` config to mixed precision, in place.

    What ``tools/train.py --amp`` does: the wrapper becomes
    :class:`CrIBoAmpOptimWrapper`, float16 with dynamic loss scaling on a
    GPU, bfloat16 on a machine without CUDA. Settings already in the config
    (``dtype``, ``loss_scale`` of an ``AmpOptimWrapper``) are kept.

    Args:
        optim_wrapper_cfg (dict): The config's ``optim_wrapper``.

    Returns:
        str: A one-line description of the chosen precision.
    """
    if optim_wrapper_cfg.get('use_fsdp', False):
        raise ValueError('--amp: optim_wrapper.use_fsdp=True needs '
                         "mmengine's AmpOptimWrapper; set its type in the "
                         'config instead of --amp')
    optim_wrapper_cfg.pop('use_fsdp', None)
    optim_wrapper_cfg['type'] = 'CrIBoAmpOptimWrapper'
    if optim_wrapper_cfg.get('dtype') is None:
        optim_wrapper_cfg['dtype'] = 'auto'
    device_type, dtype = resolve_amp_settings(
        optim_wrapper_cfg['dtype'], optim_wrapper_cfg.get('device_type',
                                                          'auto'))
    if dtype == torch.bfloat16:
        optim_wrapper_cfg.pop('loss_scale', None)
        where = ('the CPU (no CUDA device)'
                 if device_type == 'cpu' else 'CUDA')
        return f'--amp: bf16 autocast on {where}, no loss scaling'
    optim_wrapper_cfg.setdefault('loss_scale', 'dynamic')
    scale = optim_wrapper_cfg['loss_scale']
    scale = 'dynamic' if scale == 'dynamic' else f'loss_scale={scale!r}'
    return f'--amp: fp16 autocast on CUDA, {scale} loss scaling'
