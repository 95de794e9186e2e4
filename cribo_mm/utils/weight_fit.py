# Copyright (c) cribo-mm contributors. All rights reserved.
"""Whether loaded weights fit the model they are loaded into.

mmengine's ``load_state_dict`` (behind ``load_from``, ``--resume`` and
``init_cfg=dict(type='Pretrained')``) only logs a warning when no key of a
checkpoint matches the model, or when every tensor has another shape, and
training goes on from random weights. :func:`check_state_dict_fit`, called
first for every such load (installed by :mod:`cribo_mm.utils.compat`),
makes both an error.
"""
import os
from typing import Any, Dict, List, Mapping, Optional

from torch import Tensor, nn

from .checkpoint_io import CheckpointError

__all__ = [
    'CheckpointMismatchError', 'MAX_SHAPE_MISMATCHES',
    'MAX_SHAPE_MISMATCHES_ENV', 'check_state_dict_fit'
]

#: Most tensors whose shape may differ between a checkpoint and the model it
#: is loaded into (they keep their initialisation) before the load is an
#: error. A few are normal (a new classifier: weight and bias; a resized
#: position embedding); more mean another architecture. Override with the
#: environment variable :data:`MAX_SHAPE_MISMATCHES_ENV`.
MAX_SHAPE_MISMATCHES = 4
MAX_SHAPE_MISMATCHES_ENV = 'CRIBO_MAX_SHAPE_MISMATCHES'


class CheckpointMismatchError(CheckpointError):
    """Weights that do not fit the model they are loaded into."""


def _max_shape_mismatches() -> int:
    value = os.environ.get(MAX_SHAPE_MISMATCHES_ENV)
    if value is None or not value.strip():
        return MAX_SHAPE_MISMATCHES
    try:
        return int(value)
    except ValueError:
        raise ValueError(f'{MAX_SHAPE_MISMATCHES_ENV}={value!r} is not an '
                         'integer') from None


def _listing(items: List[str], limit: int = 8) -> str:
    text = '; '.join(items[:limit])
    if len(items) > limit:
        text += f'; ... ({len(items)} in all)'
    return text


def check_state_dict_fit(module: nn.Module,
                         state_dict: Mapping[str, Any],
                         source: Optional[str] = None,
                         max_shape_mismatches: Optional[int] = None) -> Dict:
    """Refuse weights that do not fit a model at all.

    Args:
        module (nn.Module): The model (unwrapped) receiving the weights.
        state_dict (Mapping[str, Any]): The weights, keys as the model's.
        source (str, optional): Where they come from, for the message.
        max_shape_mismatches (int, optional): Most tensors allowed to differ
            in shape. Defaults to :data:`MAX_SHAPE_MISMATCHES` or
            :data:`MAX_SHAPE_MISMATCHES_ENV`.

    Returns:
        dict: ``matched``, ``missing``, ``unexpected`` (key counts) and
        ``shape_mismatches`` (list of keys).

    Raises:
        CheckpointMismatchError: No key in common, or more than
            ``max_shape_mismatches`` tensors differ in shape.
    """
    if max_shape_mismatches is None:
        max_shape_mismatches = _max_shape_mismatches()
    own = module.state_dict()
    keys = [k for k, v in state_dict.items() if isinstance(v, Tensor)]
    matched = [k for k in keys if k in own]
    where = f' from {source}' if source else ''
    if own and keys and not matched:
        raise CheckpointMismatchError(
            f'none of the {len(keys)} checkpoint tensors{where} matches a '
            f'parameter or buffer of {type(module).__name__} '
            f'({len(own)} entries): the checkpoint is of another '
            f'architecture or has another key prefix. Checkpoint keys: '
            f'{_listing(sorted(keys), 5)}; model keys: '
            f'{_listing(sorted(own), 5)}')
    mismatched = [
        f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model '
        f'{tuple(own[k].shape)}' for k in matched
        if tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if len(mismatched) > max_shape_mismatches:
        raise CheckpointMismatchError(
            f'{len(mismatched)} of the {len(matched)} matching tensors'
            f'{where} differ in shape from {type(module).__name__} (at most '
            f'{max_shape_mismatches} allowed, {MAX_SHAPE_MISMATCHES_ENV}): '
            f'the checkpoint is of another architecture or width. '
            f'{_listing(mismatched)}')
    return dict(
        matched=len(matched),
        missing=len(set(own) - set(keys)),
        unexpected=len(set(keys) - set(own)),
        shape_mismatches=mismatched)
