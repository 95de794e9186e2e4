# Copyright (c) cribo-mm contributors. All rights reserved.
"""ResNet backbone weights of BYOL / ORL checkpoints, for downstream use.

The online backbone of a stage-1 (BYOL) or stage-3 (ORL) checkpoint is the
network ORL evaluates. Its keys (``conv1``, ``bn1``, ``layer1.0.conv1`` ...)
are those of mmpretrain's and MMSegmentation's ``ResNet`` (pytorch style,
no deep stem), and of the authors' OpenSelfSup checkpoints, so extraction
is a prefix selection plus a validation of the architecture.
"""
import re
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional

from torch import Tensor

from cribo_mm.models.utils.checkpoint_formats import (strip_ddp, strip_prefix,
                                                      to_plain)

from .checkpoint_io import CheckpointError

__all__ = [
    'RESNET_PREFIXES', 'extract_resnet_backbone', 'infer_resnet_arch',
    'make_resnet_backbone_checkpoint'
]

#: Key prefix of each network in mmpretrain BYOL / cribo_mm ORL
#: checkpoints (the authors' OpenSelfSup files use ``backbone.`` too).
RESNET_PREFIXES = dict(online='backbone.', target='target_net.module.0.')

# blocks per stage -> depth, for basic blocks and bottlenecks
_DEPTHS = {
    ('basic', (2, 2, 2, 2)): 18,
    ('basic', (3, 4, 6, 3)): 34,
    ('bottleneck', (3, 4, 6, 3)): 50,
    ('bottleneck', (3, 4, 23, 3)): 101,
    ('bottleneck', (3, 8, 36, 3)): 152,
}


def infer_resnet_arch(state_dict: Mapping[str, Tensor]) -> Dict[str, Any]:
    """Depth and widths of a ResNet state dict (unprefixed keys).

    Args:
        state_dict (Mapping[str, Tensor]): ResNet weights.

    Returns:
        dict: ``depth``, ``block`` ('basic' or 'bottleneck'),
        ``stem_channels``, ``base_channels``, ``out_channels`` (of the last
        stage), ``blocks`` (per stage).

    Raises:
        CheckpointError: Not a 4-stage pytorch-style ResNet.
    """
    for key in ('conv1.weight', 'bn1.weight', 'bn1.running_mean'):
        if key not in state_dict:
            stem = ' (a deep stem: use ResNetV1c / ResNetV1d)' if any(
                k.startswith('stem.') for k in state_dict) else ''
            raise CheckpointError(
                f'not a ResNet state dict: no {key!r}{stem}; first keys: '
                f'{list(state_dict)[:5]}')
    blocks = []
    for stage in range(1, 5):
        ids = {
            int(m.group(1))
            for k in state_dict
            for m in [re.match(rf'layer{stage}\.(\d+)\.', k)] if m
        }
        if not ids or ids != set(range(len(ids))):
            raise CheckpointError(
                f'not a ResNet state dict: stage layer{stage} has blocks '
                f'{sorted(ids)}')
        blocks.append(len(ids))
    block = 'bottleneck' if 'layer1.0.conv3.weight' in state_dict else 'basic'
    depth = _DEPTHS.get((block, tuple(blocks)))
    if depth is None:
        raise CheckpointError(f'unknown ResNet: {block} blocks {blocks}')
    last = f'layer4.{blocks[3] - 1}.'
    out = state_dict[last + ('conv3.weight' if block == 'bottleneck' else
                             'conv2.weight')].shape[0]
    return dict(
        depth=depth,
        block=block,
        stem_channels=int(state_dict['conv1.weight'].shape[0]),
        base_channels=int(state_dict['layer1.0.conv1.weight'].shape[0]),
        out_channels=int(out),
        blocks=blocks)


def extract_resnet_backbone(checkpoint: Mapping,
                            network: str = 'online'
                            ) -> 'OrderedDict[str, Tensor]':
    """The ResNet backbone of a BYOL / ORL checkpoint, unprefixed.

    Args:
        checkpoint (Mapping): A Runner checkpoint (``state_dict``), an
            OpenSelfSup checkpoint, a bare state dict or a file written by
            :func:`make_resnet_backbone_checkpoint`.
        network (str): 'online' (evaluated by ORL) or 'target' (the EMA
            network). Defaults to 'online'.

    Returns:
        OrderedDict[str, Tensor]: Validated by :func:`infer_resnet_arch`.

    Raises:
        CheckpointError: No such network, or not a ResNet.
    """
    if network not in RESNET_PREFIXES:
        raise ValueError(f'network must be one of {sorted(RESNET_PREFIXES)},'
                         f' got {network!r}')
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, Mapping):
        raise CheckpointError('the checkpoint holds no state dict')
    state = strip_ddp(state)
    backbone = strip_prefix(state, RESNET_PREFIXES[network])
    if not backbone:
        raise CheckpointError(
            f'the checkpoint has no {network} backbone (no '
            f'"{RESNET_PREFIXES[network]}*" keys); first keys: '
            f'{list(state)[:5]}')
    infer_resnet_arch(backbone)
    return backbone


def make_resnet_backbone_checkpoint(backbone: Mapping[str, Tensor],
                                    meta: Optional[Mapping] = None) -> Dict:
    """A tensors-only ResNet backbone file for MMSegmentation / mmpretrain.

    Args:
        backbone (Mapping[str, Tensor]): Unprefixed ResNet keys.
        meta (Mapping, optional): Plain values stored under ``meta``; the
            inferred architecture is added.

    Returns:
        dict: ``{'state_dict': {'backbone.<key>': Tensor}, 'meta': dict}``,
        loaded with ``init_cfg=dict(type='Pretrained', checkpoint=...,
        prefix='backbone.')``.
    """
    arch = infer_resnet_arch(backbone)
    full_meta = dict(arch=f'resnet{arch["depth"]}', **arch)
    full_meta.update(to_plain(dict(meta or {})))
    state = OrderedDict(('backbone.' + k, v.detach().clone().contiguous())
                        for k, v in backbone.items())
    return dict(state_dict=state, meta=full_meta)
