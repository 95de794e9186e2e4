# Copyright (c) cribo-mm contributors. All rights reserved.
"""Checkpoint formats of CrIBo models: the authors' layout, cribo_mm Runner
checkpoints and backbone files, and the conversions between them.

Pure functions on dicts of tensors; files are read and written by
:mod:`cribo_mm.utils.checkpoint_io` (the loading policy) and the scripts in
``tools/model_converters/`` are thin command-line wrappers.

Three checkpoint layouts are understood:

* ``'official'``: what the authors' ``main_cribo.py`` writes (and what they
  released): ``student`` (``module.``-prefixed, DDP) and ``teacher`` state
  dicts with timm/DINO ViT names (``blocks.0.norm1``...) and a ``DINOHead``
  with the legacy ``weight_g``/``weight_v`` weight norm, ``dino_loss``
  centres, the memory-bank queues ``centroids_queue_cpu``,
  ``cls_queue_cpu``, ``cpv_queue_cpu``, ``epoch`` and ``args``
  (an ``argparse.Namespace``).
* ``'cribo_mm'``: an mmengine Runner checkpoint of :class:`CrIBo`
  (``state_dict`` with ``backbone.*``, ``neck.*``, ``teacher.module.0.*``,
  ``teacher.module.1.*``, ``teacher.steps``, ``head.center*``,
  ``memory_bank.*``).
* ``'backbone'``: the tensors-only file written by
  :func:`make_backbone_checkpoint`: ``{'state_dict': {'backbone.<mmpretrain
  ViT key>': tensor}, 'meta': {...}}``, loaded through
  ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')`` of
  an mmpretrain ``VisionTransformer`` (in mmpretrain or in MMSegmentation
  through ``type='mmpretrain.VisionTransformer'``).
"""
import argparse
import math
import os.path as osp
import re
from collections import OrderedDict
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

import torch
from torch import Tensor

from cribo_mm.utils.checkpoint_io import CheckpointError

__all__ = [
    'BACKBONE_PREFIX', 'detect_layout', 'strip_prefix', 'add_prefix',
    'strip_ddp', 'to_plain', 'official_vit_to_mmpretrain',
    'mmpretrain_vit_to_official', 'legacy_weight_norm_to_parametrized',
    'parametrized_weight_norm_to_legacy', 'infer_vit_arch',
    'validate_vit_state_dict', 'infer_head_arch', 'official_to_cribo_mm',
    'extract_backbone', 'make_backbone_checkpoint', 'source_meta'
]

#: Prefix of the backbone keys in a ``'backbone'`` file (and in mmpretrain
#: classifiers), used with ``init_cfg=dict(..., prefix='backbone.')``.
BACKBONE_PREFIX = 'backbone.'

_OFFICIAL_KEYS = ('student', 'teacher')
_OFFICIAL_STATE_KEYS = ('dino_loss', 'centroids_queue_cpu', 'cls_queue_cpu',
                        'cpv_queue_cpu')
_TEACHER_PREFIX = 'teacher.module.0.'
_TEACHER_NECK_PREFIX = 'teacher.module.1.'


# ----------------------------------------------------------------------
# key utilities
# ----------------------------------------------------------------------
def to_plain(value: Any) -> Any:
    """Recursively turn a value into str/int/float/bool/None/list/dict.

    Args:
        value (Any): E.g. an ``argparse.Namespace`` or nested containers.

    Returns:
        Any: Plain Python values; other objects become their ``str``.
    """
    if isinstance(value, argparse.Namespace):
        value = vars(value)
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Tensor) and value.numel() == 1:
        return value.item()
    return str(value)


def strip_prefix(state_dict: Mapping[str, Tensor],
                 prefix: str,
                 strict: bool = False) -> 'OrderedDict[str, Tensor]':
    """Keys starting with ``prefix``, with the prefix removed.

    Args:
        state_dict (Mapping[str, Tensor]): Source.
        prefix (str): Prefix to select and remove.
        strict (bool): Raise if some key lacks the prefix.

    Returns:
        OrderedDict[str, Tensor]: The selected entries.
    """
    out = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith(prefix):
            out[key[len(prefix):]] = value
        elif strict:
            raise CheckpointError(f'key {key!r} lacks the prefix {prefix!r}')
    return out


def add_prefix(state_dict: Mapping[str, Tensor],
               prefix: str) -> 'OrderedDict[str, Tensor]':
    """Prepend ``prefix`` to every key.

    Args:
        state_dict (Mapping[str, Tensor]): Source.
        prefix (str): Prefix to add.

    Returns:
        OrderedDict[str, Tensor]: The renamed entries.
    """
    return OrderedDict((prefix + k, v) for k, v in state_dict.items())


def strip_ddp(state_dict: Mapping[str, Tensor]) -> Mapping[str, Tensor]:
    """Remove the ``module.`` prefix of a DDP-wrapped state dict.

    Args:
        state_dict (Mapping[str, Tensor]): Source.

    Returns:
        Mapping[str, Tensor]: Unprefixed when every key has the prefix,
        else ``state_dict`` itself.
    """
    if state_dict and all(k.startswith('module.') for k in state_dict):
        return strip_prefix(state_dict, 'module.')
    return state_dict


def _short(keys: Iterable[str], limit: int = 8) -> str:
    keys = sorted(keys)
    text = ', '.join(keys[:limit])
    if len(keys) > limit:
        text += f', ... ({len(keys)} in all)'
    return text


# ----------------------------------------------------------------------
# ViT keys: official (timm / DINO) <-> mmpretrain VisionTransformer
# ----------------------------------------------------------------------
# (official regex, mmpretrain template) for the per-block entries.
_BLOCK_RULES = (
    ('norm1', 'ln1'),
    ('attn.qkv', 'attn.qkv'),
    ('attn.proj', 'attn.proj'),
    ('norm2', 'ln2'),
    ('mlp.fc1', 'ffn.layers.0.0'),
    ('mlp.fc2', 'ffn.layers.1'),
)
_TOP_RULES = (
    ('cls_token', 'cls_token'),
    ('pos_embed', 'pos_embed'),
    ('patch_embed.proj.weight', 'patch_embed.projection.weight'),
    ('patch_embed.proj.bias', 'patch_embed.projection.bias'),
    ('norm.weight', 'ln1.weight'),
    ('norm.bias', 'ln1.bias'),
)


def _rename(state_dict: Mapping[str, Tensor], top: Dict[str, str],
            block: Dict[str, str], block_src: str, block_dst: str,
            what: str) -> 'OrderedDict[str, Tensor]':
    pattern = re.compile(
        rf'^{re.escape(block_src)}\.(\d+)\.(.+)\.(weight|bias)$')
    out, unknown = OrderedDict(), []
    for key, value in state_dict.items():
        if key in top:
            out[top[key]] = value
            continue
        match = pattern.match(key)
        if match and match.group(2) in block:
            index, module, kind = match.groups()
            out[f'{block_dst}.{index}.{block[module]}.{kind}'] = value
            continue
        unknown.append(key)
    if unknown:
        raise CheckpointError(
            f'unexpected keys in the {what} ViT state dict: {_short(unknown)}'
            '; only a plain ViT (patch embedding, CLS token, position '
            'embedding, pre-norm blocks, final norm) can be converted')
    return out


def official_vit_to_mmpretrain(
        state_dict: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """Rename an official (timm/DINO style) ViT state dict for mmpretrain.

    ``patch_embed.proj`` -> ``patch_embed.projection``, ``blocks.i`` ->
    ``layers.i`` with ``norm1/norm2`` -> ``ln1/ln2``, ``mlp.fc1`` ->
    ``ffn.layers.0.0``, ``mlp.fc2`` -> ``ffn.layers.1``, final ``norm`` ->
    ``ln1``; ``cls_token``, ``pos_embed`` and ``attn.{qkv,proj}`` keep their
    names. Tensors are not copied.

    Args:
        state_dict (Mapping[str, Tensor]): Unprefixed official backbone
            keys.

    Returns:
        OrderedDict[str, Tensor]: mmpretrain ``VisionTransformer`` keys.

    Raises:
        CheckpointError: A key has no mmpretrain counterpart.
    """
    return _rename(state_dict, dict(_TOP_RULES), dict(_BLOCK_RULES), 'blocks',
                   'layers', 'official')


def mmpretrain_vit_to_official(
        state_dict: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """Inverse of :func:`official_vit_to_mmpretrain`.

    Args:
        state_dict (Mapping[str, Tensor]): Unprefixed mmpretrain
            ``VisionTransformer`` keys.

    Returns:
        OrderedDict[str, Tensor]: Official (timm/DINO style) keys.
    """
    top = {dst: src for src, dst in _TOP_RULES}
    block = {dst: src for src, dst in _BLOCK_RULES}
    return _rename(state_dict, top, block, 'layers', 'blocks', 'mmpretrain')


def legacy_weight_norm_to_parametrized(
        state_dict: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """``X.weight_g``/``X.weight_v`` (``nn.utils.weight_norm``) ->
    ``X.parametrizations.weight.original0/1``
    (``nn.utils.parametrizations.weight_norm``); other keys unchanged.

    Args:
        state_dict (Mapping[str, Tensor]): Source.

    Returns:
        OrderedDict[str, Tensor]: Renamed entries, in the same order.
    """
    out = OrderedDict()
    for key, value in state_dict.items():
        if key.endswith('.weight_g'):
            key = key[:-len('weight_g')] + 'parametrizations.weight.original0'
        elif key.endswith('.weight_v'):
            key = key[:-len('weight_v')] + 'parametrizations.weight.original1'
        out[key] = value
    return out


def parametrized_weight_norm_to_legacy(
        state_dict: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """Inverse of :func:`legacy_weight_norm_to_parametrized`.

    Args:
        state_dict (Mapping[str, Tensor]): Source.

    Returns:
        OrderedDict[str, Tensor]: Renamed entries, in the same order.
    """
    out = OrderedDict()
    suffix = 'parametrizations.weight.original'
    for key, value in state_dict.items():
        if key.endswith(suffix + '0'):
            key = key[:-len(suffix) - 1] + 'weight_g'
        elif key.endswith(suffix + '1'):
            key = key[:-len(suffix) - 1] + 'weight_v'
        out[key] = value
    return out


# ----------------------------------------------------------------------
# architecture inference and validation
# ----------------------------------------------------------------------
#: Attention heads of the standard ViT widths (64 dims per head).
_STANDARD_HEADS = {192: 3, 384: 6, 768: 12, 1024: 16}


def infer_vit_arch(state_dict: Mapping[str, Tensor],
                   num_heads: Optional[int] = None) -> Dict[str, Any]:
    """Architecture of an mmpretrain ViT state dict, read from its shapes.

    The number of heads is not stored in the weights; unless given it is
    taken from the standard widths (ViT-T/S/B/L: 192/384/768/1024 dims with
    3/6/12/16 heads, i.e. 64 dims per head) and is None for other widths.

    Args:
        state_dict (Mapping[str, Tensor]): Unprefixed mmpretrain
            ``VisionTransformer`` keys.
        num_heads (int, optional): Number of attention heads.

    Returns:
        dict: ``arch`` (mmpretrain arch dict: ``embed_dims``, ``num_layers``,
        ``num_heads``, ``feedforward_channels``), ``patch_size``,
        ``img_size`` (pretraining resolution, from ``pos_embed``),
        ``qkv_bias`` and ``final_norm``.

    Raises:
        CheckpointError: Essential entries are missing.
    """
    needed = ('cls_token', 'pos_embed', 'patch_embed.projection.weight')
    missing = [k for k in needed if k not in state_dict]
    if missing:
        raise CheckpointError(
            f'not a ViT state dict: missing {_short(missing)} (found '
            f'{_short(state_dict)})')
    embed_dims = int(state_dict['cls_token'].shape[-1])
    patch_size = int(state_dict['patch_embed.projection.weight'].shape[-1])
    indices = {
        int(m.group(1))
        for m in (re.match(r'^layers\.(\d+)\.', k) for k in state_dict) if m
    }
    if not indices:
        raise CheckpointError('the ViT state dict has no transformer blocks '
                              '(layers.<i>.*)')
    num_layers = max(indices) + 1
    gaps = sorted(set(range(num_layers)) - indices)
    if gaps:
        raise CheckpointError(f'the ViT state dict misses blocks {gaps}')
    ffn_key = 'layers.0.ffn.layers.0.0.weight'
    if ffn_key not in state_dict:
        raise CheckpointError(f'the ViT state dict misses {ffn_key}')
    grid = state_dict['pos_embed'].shape[1] - 1
    side = int(round(math.sqrt(grid)))
    if side * side != grid:
        raise CheckpointError(
            f'pos_embed has {grid} patch positions, not a square grid')
    if num_heads is None:
        num_heads = _STANDARD_HEADS.get(embed_dims)
    return dict(
        arch=dict(
            embed_dims=embed_dims,
            num_layers=num_layers,
            num_heads=None if num_heads is None else int(num_heads),
            feedforward_channels=int(state_dict[ffn_key].shape[0])),
        patch_size=patch_size,
        img_size=side * patch_size,
        qkv_bias='layers.0.attn.qkv.bias' in state_dict,
        final_norm='ln1.weight' in state_dict)


def _expected_vit_keys(num_layers: int, qkv_bias: bool,
                       final_norm: bool) -> set:
    keys = {
        'cls_token', 'pos_embed', 'patch_embed.projection.weight',
        'patch_embed.projection.bias'
    }
    per_block = [
        'ln1.weight', 'ln1.bias', 'attn.qkv.weight', 'attn.proj.weight',
        'attn.proj.bias', 'ln2.weight', 'ln2.bias', 'ffn.layers.0.0.weight',
        'ffn.layers.0.0.bias', 'ffn.layers.1.weight', 'ffn.layers.1.bias'
    ]
    if qkv_bias:
        per_block.append('attn.qkv.bias')
    for i in range(num_layers):
        keys.update(f'layers.{i}.{k}' for k in per_block)
    if final_norm:
        keys.update({'ln1.weight', 'ln1.bias'})
    return keys


def validate_vit_state_dict(state_dict: Mapping[str, Tensor],
                            final_norm: bool = True) -> Dict[str, Any]:
    """Check that a state dict is a complete mmpretrain ViT.

    Args:
        state_dict (Mapping[str, Tensor]): Unprefixed mmpretrain keys.
        final_norm (bool): Whether the final LayerNorm ``ln1`` is expected
            (it is for every CrIBo backbone). Defaults to True.

    Returns:
        dict: The output of :func:`infer_vit_arch`.

    Raises:
        CheckpointError: Missing or unexpected keys, or inconsistent shapes.
    """
    info = infer_vit_arch(state_dict)
    arch = info['arch']
    expected = _expected_vit_keys(arch['num_layers'], info['qkv_bias'],
                                  final_norm)
    missing = expected - set(state_dict)
    unexpected = set(state_dict) - expected
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f'missing: {_short(missing)}')
        if unexpected:
            parts.append(f'unexpected: {_short(unexpected)}')
        raise CheckpointError('incomplete mmpretrain ViT state dict; ' +
                              '; '.join(parts))
    dim = arch['embed_dims']
    for key, shape in (('layers.0.attn.qkv.weight', (3 * dim, dim)),
                       ('layers.0.attn.proj.weight', (dim, dim)),
                       ('pos_embed', (1, state_dict['pos_embed'].shape[1],
                                      dim))):
        if tuple(state_dict[key].shape) != shape:
            raise CheckpointError(
                f'{key} has shape {tuple(state_dict[key].shape)}, expected '
                f'{shape} for embed_dims={dim}')
    return info


def infer_head_arch(state_dict: Mapping[str, Tensor]) -> Dict[str, Any]:
    """Arguments of :class:`CrIBoProjectionHead` that reproduce a head.

    Works on the authors' ``DINOHead`` keys (legacy weight norm) and on
    :class:`CrIBoProjectionHead` keys alike.

    Args:
        state_dict (Mapping[str, Tensor]): Unprefixed head keys.

    Returns:
        dict: ``in_channels``, ``out_channels``, ``out_channels_objects``,
        ``hidden_channels``, ``bottleneck_channels``, ``num_layers`` and
        ``use_bn``.

    Raises:
        CheckpointError: The head lacks an MLP or a last layer.
    """
    sd = legacy_weight_norm_to_parametrized(state_dict)
    if 'mlp.weight' in sd:  # a single linear layer
        linears = [sd['mlp.weight']]
    else:
        idx = sorted({
            int(m.group(1))
            for m in (re.match(r'^mlp\.(\d+)\.weight$', k) for k in sd) if m
        })
        linears = [sd[f'mlp.{i}.weight'] for i in idx]
        linears = [w for w in linears if w.ndim == 2]
    gains = [
        f'{name}.parametrizations.weight.original0'
        for name in ('last_layer', 'last_layer_c')
    ]
    missing = [k for k in gains if k not in sd]
    if not linears or missing:
        raise CheckpointError('not a CrIBo projection head: ' +
                              ('no MLP weights (mlp.*)' if not linears else
                               f'missing {_short(missing)}') +
                              f' (found {_short(sd)})')
    return dict(
        in_channels=int(linears[0].shape[1]),
        out_channels=int(sd[gains[0]].shape[0]),
        out_channels_objects=int(sd[gains[1]].shape[0]),
        hidden_channels=int(linears[0].shape[0])
        if len(linears) > 1 else int(linears[-1].shape[0]),
        bottleneck_channels=int(linears[-1].shape[0]),
        num_layers=len(linears),
        use_bn=any(k.endswith('running_mean') for k in sd))


# ----------------------------------------------------------------------
# layouts
# ----------------------------------------------------------------------
def detect_layout(checkpoint: Any) -> str:
    """Which checkpoint layout an object is.

    Args:
        checkpoint (Any): A loaded checkpoint.

    Returns:
        str: ``'official'``, ``'cribo_mm'`` or ``'backbone'``.

    Raises:
        CheckpointError: None of them.
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(
            f'a checkpoint must be a dict, got {type(checkpoint).__name__}')
    if all(k in checkpoint for k in _OFFICIAL_KEYS):
        return 'official'
    state = checkpoint.get('state_dict', checkpoint)
    if isinstance(state, Mapping):
        keys = list(state)
        if any(k.startswith(_TEACHER_PREFIX) for k in keys):
            return 'cribo_mm'
        if keys and all(k.startswith(BACKBONE_PREFIX) for k in keys):
            return 'backbone'
        if any(k.startswith(BACKBONE_PREFIX) for k in keys):
            return 'cribo_mm'
    raise CheckpointError(
        'unknown checkpoint layout: expected the authors\' layout (keys '
        '"student" and "teacher"), a cribo_mm Runner checkpoint '
        '("state_dict" with "backbone.*" / "teacher.module.0.*") or a '
        f'backbone file; top-level keys: {_short(checkpoint)}')


def _official_parts(
    checkpoint: Mapping, which: str
) -> Tuple['OrderedDict[str, Tensor]', 'OrderedDict[str, Tensor]']:
    """mmpretrain backbone and parametrized head of an official network."""
    state = checkpoint.get(which)
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(
            f'the official checkpoint has no usable "{which}" state dict')
    state = strip_ddp(state)
    backbone = strip_prefix(state, 'backbone.')
    head = strip_prefix(state, 'head.')
    other = [
        k for k in state
        if not k.startswith('backbone.') and not k.startswith('head.')
    ]
    if not backbone:
        raise CheckpointError(
            f'the official "{which}" state dict has no "backbone." keys '
            f'(found {_short(state)})')
    if other:
        raise CheckpointError(
            f'unexpected keys in the official "{which}" state dict: '
            f'{_short(other)}')
    return (official_vit_to_mmpretrain(backbone),
            legacy_weight_norm_to_parametrized(head))


def _check_official(checkpoint: Any, need_state: bool) -> None:
    if detect_layout(checkpoint) != 'official':
        raise CheckpointError(
            'not a checkpoint of the authors\' code (no "student" and '
            '"teacher" entries)')
    if need_state:
        missing = [k for k in _OFFICIAL_STATE_KEYS if k not in checkpoint]
        if missing:
            raise CheckpointError(
                'the official checkpoint lacks the training state needed '
                f'for a full conversion: {", ".join(missing)}')
        loss = checkpoint['dino_loss']
        if not isinstance(loss, Mapping) or not {'center', 'center_c'
                                                 } <= set(loss):
            raise CheckpointError(
                '"dino_loss" must hold the "center" and "center_c" buffers')


def official_to_cribo_mm(checkpoint: Mapping,
                         teacher_steps: Optional[int] = None,
                         iters_per_epoch: Optional[int] = None,
                         num_inserted: Optional[int] = None,
                         num_heads: Optional[int] = None) -> Dict:
    """Convert an official CrIBo training checkpoint to a cribo_mm one.

    The result is a tensors-only mmengine-style checkpoint
    (``{'meta', 'state_dict'}``) that loads strictly into a :class:`CrIBo`
    built with the matching architecture (see ``meta['cribo_mm_model']``)
    and ``memory_bank.store_cls=True``, e.g. through ``load_from``.

    Mapping: student -> ``backbone.*`` / ``neck.*``; teacher ->
    ``teacher.module.0.*`` / ``teacher.module.1.*``; ``dino_loss.center`` /
    ``center_c`` -> ``head.center`` / ``head.center_c``;
    ``centroids_queue_cpu`` -> ``memory_bank.objects``, ``cls_queue_cpu`` ->
    ``memory_bank.cls``, ``cpv_queue_cpu`` -> ``memory_bank.objects_per_image``
    (int64).

    Args:
        checkpoint (Mapping): The loaded official checkpoint.
        teacher_steps (int, optional): Value of ``teacher.steps``, the EMA
            update counter that drives the teacher momentum schedule. It must
            be > 0, or the first EMA update would copy the student over the
            teacher. Defaults to ``epoch * iters_per_epoch`` when
            ``iters_per_epoch`` is given, else ``max(epoch, 1)``.
        iters_per_epoch (int, optional): Iterations per epoch of the
            original run.
        num_inserted (int, optional): ``memory_bank.num_inserted``, real
            images in the bank (the authors' code does not record it).
            Defaults to the queue size S when at least one epoch was
            completed (the bank is then full unless the data set is smaller
            than S), else 0.
        num_heads (int, optional): Attention heads of the ViT, for
            ``meta['cribo_mm_model']`` only (the weights do not store it).
            Defaults to 64 dims per head for the standard widths.

    Returns:
        dict: ``{'meta': {...}, 'state_dict': OrderedDict}``.

    Raises:
        CheckpointError: The checkpoint is malformed.
    """
    _check_official(checkpoint, need_state=True)
    student_bb, student_head = _official_parts(checkpoint, 'student')
    teacher_bb, teacher_head = _official_parts(checkpoint, 'teacher')
    info = validate_vit_state_dict(student_bb)
    teacher_info = validate_vit_state_dict(teacher_bb)
    if num_heads is not None:
        for i in (info, teacher_info):
            i['arch']['num_heads'] = int(num_heads)
    if info['arch']['num_heads'] is None:
        raise CheckpointError(
            'cannot tell the number of attention heads of a ViT with '
            f'{info["arch"]["embed_dims"]} dims; pass num_heads')
    if info != teacher_info:
        raise CheckpointError(
            f'student and teacher backbones differ: {info} vs '
            f'{teacher_info}')
    head_info = infer_head_arch(student_head)
    if infer_head_arch(teacher_head) != head_info:
        raise CheckpointError('student and teacher heads differ in shape')
    allowed = ('mlp.', 'last_layer.parametrizations.weight.original',
               'last_layer_c.parametrizations.weight.original')
    for name, sd in (('student', student_head), ('teacher', teacher_head)):
        odd = [k for k in sd if not k.startswith(allowed)]
        if odd:
            raise CheckpointError(
                f'unexpected keys in the {name} head: {_short(odd)}')

    epoch = int(checkpoint.get('epoch', 0))
    if teacher_steps is None:
        teacher_steps = (
            epoch * int(iters_per_epoch) if iters_per_epoch else max(epoch, 1))
    if int(teacher_steps) <= 0:
        raise CheckpointError(
            f'teacher_steps must be > 0, got {teacher_steps}: with 0 the '
            'first EMA update would overwrite the teacher with the student')

    queue = checkpoint['centroids_queue_cpu']
    cls_queue = checkpoint['cls_queue_cpu']
    cpv = checkpoint['cpv_queue_cpu']
    dim = info['arch']['embed_dims']
    if not (isinstance(queue, Tensor) and queue.ndim == 3
            and queue.shape[0] == 2 and queue.shape[2] == dim):
        raise CheckpointError(
            'centroids_queue_cpu must be a (2, K*S, D) tensor with D = '
            f'{dim}, got {getattr(queue, "shape", type(queue))}')
    num_images = int(cpv.shape[0]) if isinstance(cpv, Tensor) else -1
    if (not isinstance(cls_queue, Tensor)
            or tuple(cls_queue.shape) != (2, num_images, dim)
            or num_images <= 0 or queue.shape[1] % num_images):
        raise CheckpointError(
            'inconsistent memory-bank queues: centroids_queue_cpu '
            f'{tuple(queue.shape)}, cls_queue_cpu '
            f'{tuple(getattr(cls_queue, "shape", ()))}, cpv_queue_cpu '
            f'{tuple(getattr(cpv, "shape", ()))}')
    num_objects = queue.shape[1] // num_images
    if num_inserted is None:
        num_inserted = num_images if epoch >= 1 else 0
    centers = checkpoint['dino_loss']
    for key, size in (('center', head_info['out_channels']),
                      ('center_c', head_info['out_channels_objects'])):
        if tuple(centers[key].shape) != (1, size):
            raise CheckpointError(
                f'dino_loss.{key} has shape {tuple(centers[key].shape)}, '
                f'expected (1, {size})')

    state = OrderedDict()
    state.update(add_prefix(student_bb, 'backbone.'))
    state.update(add_prefix(student_head, 'neck.'))
    state.update(add_prefix(teacher_bb, _TEACHER_PREFIX))
    state.update(add_prefix(teacher_head, _TEACHER_NECK_PREFIX))
    state['teacher.steps'] = torch.tensor(int(teacher_steps), dtype=torch.long)
    state['head.center'] = centers['center']
    state['head.center_c'] = centers['center_c']
    state['memory_bank.objects'] = queue
    state['memory_bank.cls'] = cls_queue
    state['memory_bank.objects_per_image'] = cpv.to(torch.long)
    state['memory_bank.num_inserted'] = torch.tensor(
        int(num_inserted), dtype=torch.long)
    state = OrderedDict(
        (k, v.detach().clone().contiguous()) for k, v in state.items())

    args = checkpoint.get('args')
    norm_last_layer = getattr(args, 'norm_last_layer', None)
    if norm_last_layer is not None:
        head_info['norm_last_layer'] = bool(norm_last_layer)
    model = dict(
        patch_size=info['patch_size'],
        backbone=dict(
            type='VisionTransformer',
            arch=info['arch'],
            img_size=info['img_size'],
            patch_size=info['patch_size'],
            qkv_bias=info['qkv_bias'],
            out_type='raw',
            final_norm=True),
        neck=dict(type='CrIBoProjectionHead', **head_info),
        head=dict(
            type='CrIBoLoss',
            out_dim=head_info['out_channels'],
            out_dim_c=head_info['out_channels_objects']),
        memory_bank=dict(
            type='CrIBoMemoryBank',
            num_images=num_images,
            num_objects=num_objects,
            embed_dim=dim,
            store_cls=True))
    meta = dict(
        epoch=epoch,
        iter=int(teacher_steps),
        converted_from='official CrIBo checkpoint',
        cribo_mm_model=model,
        official_args=to_plain(args) if args is not None else None)
    return dict(meta=meta, state_dict=state)


def extract_backbone(checkpoint: Mapping,
                     which: str = 'teacher') -> 'OrderedDict[str, Tensor]':
    """Backbone weights, as mmpretrain ``VisionTransformer`` keys.

    Args:
        checkpoint (Mapping): A loaded checkpoint of any layout of
            :func:`detect_layout`.
        which (str): ``'teacher'`` (the EMA teacher, the network evaluated
            downstream by the authors and by DINO) or ``'student'``.
            Ignored for a ``'backbone'`` file. Defaults to ``'teacher'``.

    Returns:
        OrderedDict[str, Tensor]: Unprefixed mmpretrain keys, validated with
        :func:`validate_vit_state_dict`.

    Raises:
        CheckpointError: The checkpoint has no such backbone or is
            malformed.
    """
    if which not in ('teacher', 'student'):
        raise ValueError(f'which must be "teacher" or "student", got '
                         f'{which!r}')
    layout = detect_layout(checkpoint)
    if layout == 'official':
        _check_official(checkpoint, need_state=False)
        backbone, _ = _official_parts(checkpoint, which)
    else:
        state = strip_ddp(checkpoint.get('state_dict', checkpoint))
        if layout == 'backbone':
            prefix = BACKBONE_PREFIX
        else:
            prefix = _TEACHER_PREFIX if which == 'teacher' else \
                BACKBONE_PREFIX
        backbone = strip_prefix(state, prefix)
        if not backbone:
            raise CheckpointError(
                f'the checkpoint has no {which} backbone (no "{prefix}*" '
                'keys)')
    validate_vit_state_dict(backbone)
    return backbone


def make_backbone_checkpoint(backbone: Mapping[str, Tensor],
                             meta: Optional[Mapping] = None) -> Dict:
    """A tensors-only backbone file for MMSegmentation / mmpretrain.

    Args:
        backbone (Mapping[str, Tensor]): Unprefixed mmpretrain ViT keys.
        meta (Mapping, optional): Extra information (plain Python values)
            stored under ``meta``; the inferred architecture is added.

    Returns:
        dict: ``{'state_dict': {'backbone.<key>': Tensor}, 'meta': dict}``;
        load it with ``init_cfg=dict(type='Pretrained', checkpoint=...,
        prefix='backbone.')``.
    """
    info = validate_vit_state_dict(backbone)
    full_meta = dict(
        arch=info['arch'],
        patch_size=info['patch_size'],
        img_size=info['img_size'],
        num_heads_note='not stored in the weights: 64 dims per head assumed '
        'for the standard widths, None otherwise')
    full_meta.update(to_plain(dict(meta or {})))
    state = OrderedDict((BACKBONE_PREFIX + k, v.detach().clone().contiguous())
                        for k, v in backbone.items())
    return dict(state_dict=state, meta=full_meta)


def source_meta(checkpoint: Any, src: str, **extra) -> Dict:
    """Provenance of an extracted backbone: file name, epoch and iteration.

    Args:
        checkpoint (Any): The loaded source checkpoint.
        src (str): Its path (only the file name is kept).
        **extra: More plain values to store (e.g. the network taken).

    Returns:
        dict: ``source``, the extras, and ``epoch`` / ``iter`` when the
        checkpoint records them (Runner ``meta`` or a top-level ``epoch``).
    """
    meta = dict(source=osp.basename(src), **extra)
    if isinstance(checkpoint, dict):
        src_meta = checkpoint.get('meta')
        if isinstance(src_meta, dict):
            for key in ('epoch', 'iter'):
                if isinstance(src_meta.get(key), int):
                    meta[key] = src_meta[key]
        if isinstance(checkpoint.get('epoch'), int):
            meta['epoch'] = checkpoint['epoch']
    return meta
