# Copyright (c) cribo-mm contributors. All rights reserved.
"""MMSegmentation configs written for the backbone a checkpoint holds.

The benchmark configs of ``configs/benchmarks/mmsegmentation/`` are for
ViT-S/B/16 and ResNet-50. A backbone of another size (the 96-d demo ViT,
the 128-d CamVid ViT, a ResNet-18) needs its architecture in the config,
which ``--cfg-options`` cannot give (a base ``arch='deit-small'`` cannot
become a dict there). This module writes a small config that inherits
(``_base_``) one of those benchmark configs and overrides what depends on
the backbone:

* the backbone: the architecture read from the weights
  (:func:`~cribo_mm.models.utils.checkpoint_formats.infer_vit_arch`,
  :func:`~cribo_mm.utils.resnet_weights.infer_resnet_arch`),
  ``out_indices`` (the last blocks for a linear head; blocks spread evenly
  over the depth for UperNet, as 3, 6, 9, 12 of 12), ``frozen_stages`` and
  ``init_cfg.checkpoint``;
* the neck and heads: the widths of the features they read.

Everything else (data, schedule, crop, head widths) is the base's.
"""
import argparse
import ast
import glob
import os
import os.path as osp
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .checkpoint_io import CheckpointError

__all__ = [
    'BENCHMARK_DIR', 'DATASETS', 'HEADS', 'find_base_config',
    'spread_out_indices', 'num_heads_from_checkpoint', 'resolve_num_heads',
    'vit_model_cfg', 'resnet_model_cfg', 'render_config',
    'default_config_path', 'add_config_arguments', 'write_config_from_args'
]

#: The benchmark configs the written configs inherit.
BENCHMARK_DIR = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
    'benchmarks', 'mmsegmentation')
#: Data sets and heads selectable by name (``--dataset``, ``--head``).
DATASETS = ('voc12aug', 'ade20k', 'camvid')
HEADS = ('linear', 'linear-last4', 'upernet')
#: Name prefix of the benchmark configs of each backbone family.
_FAMILY_PREFIX = dict(vit='vit-s16', resnet='r50')


def find_base_config(family: str, head: str, dataset: str) -> str:
    """The benchmark config for a backbone family, head and data set.

    Args:
        family (str): 'vit' or 'resnet'.
        head (str): One of :data:`HEADS`.
        dataset (str): One of :data:`DATASETS`.

    Returns:
        str: Absolute path of the one config
        ``<vit-s16|r50>_<head>_*_<dataset>-*.py`` in :data:`BENCHMARK_DIR`.

    Raises:
        ValueError: Unknown family, or no such config (e.g. linear-last4
            exists for VOC only); the message lists the available ones.
    """
    if family not in _FAMILY_PREFIX:
        raise ValueError(f'family must be one of {sorted(_FAMILY_PREFIX)}, '
                         f'got {family!r}')
    prefix = _FAMILY_PREFIX[family]
    pattern = osp.join(BENCHMARK_DIR, f'{prefix}_{head}_*_{dataset}-*.py')
    found = sorted(glob.glob(pattern))
    if len(found) != 1:
        have = sorted(
            osp.basename(p)
            for p in glob.glob(osp.join(BENCHMARK_DIR, f'{prefix}_*.py')))
        raise ValueError(
            f'no single {prefix} benchmark config for head={head!r}, '
            f'dataset={dataset!r} in {BENCHMARK_DIR} (matched '
            f'{len(found)}); available: {have}')
    return found[0]


def spread_out_indices(num_layers: int, num_outs: int) -> List[int]:
    """Blocks spread evenly over a ViT, the last one included.

    Block ``ceil(num_layers * k / num_outs) - 1`` for ``k = 1..num_outs``:
    (2, 5, 8, 11) for 12 blocks and 4 outputs, (1, 2, 4, 5) for 6, (0, 1,
    2, 3) for 4.

    Args:
        num_layers (int): Blocks of the ViT.
        num_outs (int): Feature maps wanted (4 for UperNet's neck).

    Returns:
        list[int]: Strictly increasing block indices.

    Raises:
        ValueError: Fewer blocks than outputs.
    """
    if num_outs < 1 or num_layers < num_outs:
        raise ValueError(f'a ViT with {num_layers} blocks cannot give '
                         f'{num_outs} distinct feature maps')
    return [-(-num_layers * k // num_outs) - 1 for k in range(1, num_outs + 1)]


# ----------------------------------------------------------------------
# number of attention heads (not stored in the weights)
# ----------------------------------------------------------------------
def _dict_node_items(node: ast.AST) -> Optional[Dict[str, ast.AST]]:
    """Keys and value nodes of a ``dict(k=v)`` call or ``{'k': v}``."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id == 'dict':
        return {kw.arg: kw.value for kw in node.keywords if kw.arg}
    if isinstance(node, ast.Dict):
        return {
            k.value: v
            for k, v in zip(node.keys, node.values)
            if isinstance(k, ast.Constant) and isinstance(k.value, str)
        }
    return None


def _heads_from_config_text(text: str) -> Optional[int]:
    """``model.backbone.arch.num_heads`` of a config's text, or None.

    The text is parsed, never executed: it comes from a checkpoint file.
    """
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    for stmt in tree.body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
                and stmt.targets[0].id == 'model'):
            continue
        node = stmt.value
        for key in ('backbone', 'arch', 'num_heads'):
            items = _dict_node_items(node)
            if items is None or key not in items:
                return None
            node = items[key]
        try:
            value = ast.literal_eval(node)
        except ValueError:
            return None
        return value if isinstance(value, int) and value > 0 else None
    return None


def num_heads_from_checkpoint(checkpoint: Any) -> Optional[int]:
    """The number of attention heads a checkpoint records, if any.

    Looked up in ``meta['arch']['num_heads']`` (a backbone file written with
    a known number) and in ``meta['cfg']``, the training config mmengine's
    Runner stores in its checkpoints (``model.backbone.arch.num_heads``).

    Args:
        checkpoint (Any): A loaded checkpoint.

    Returns:
        int or None: None when the checkpoint does not say.
    """
    meta = checkpoint.get('meta') if isinstance(checkpoint, Mapping) else None
    if not isinstance(meta, Mapping):
        return None
    arch = meta.get('arch')
    if isinstance(arch, Mapping) and isinstance(arch.get('num_heads'), int):
        return arch['num_heads']
    if isinstance(meta.get('cfg'), str):
        return _heads_from_config_text(meta['cfg'])
    return None


# ----------------------------------------------------------------------
# model overrides
# ----------------------------------------------------------------------
def _widths(value: Any, widths: Sequence[int], index: Any) -> Any:
    """``in_channels`` for the features ``index`` picks from ``widths``."""
    if isinstance(index, (list, tuple)):
        return [widths[i] for i in index]
    return widths[index]


def _head_cfg(head: Mapping, widths: Sequence[int]) -> Dict:
    """In-channels (and a linear head's width) of a head on ``widths``."""
    index = head.get('in_index', -1)
    try:
        in_channels = _widths(head['in_channels'], widths, index)
    except IndexError:
        raise ValueError(f'{head["type"]} reads features {index} of '
                         f'{len(widths)}') from None
    out = dict(in_channels=in_channels)
    # a linear probe: a 1x1 conv on the (concatenated) features
    if head['type'] == 'FCNHead' and head.get('num_convs', 2) == 0:
        out['channels'] = sum(in_channels) if isinstance(
            in_channels, list) else in_channels
    return out


def _necks_and_heads(base_model: Mapping, widths: List[int]) -> Dict:
    cfg = {}
    if base_model.get('neck'):
        neck = base_model['neck']
        if neck.get('type') != 'MultiLevelNeck':
            raise ValueError(f'unsupported neck {neck.get("type")!r} in the '
                             'base config (MultiLevelNeck only)')
        # MultiLevelNeck maps every input to out_channels
        cfg['neck'] = dict(in_channels=list(widths), out_channels=widths[-1])
        widths = [widths[-1]] * len(neck['in_channels'])
    cfg['decode_head'] = _head_cfg(base_model['decode_head'], widths)
    if base_model.get('auxiliary_head'):
        cfg['auxiliary_head'] = _head_cfg(base_model['auxiliary_head'],
                                          widths)
    return cfg


def vit_model_cfg(base_model: Mapping, info: Mapping, num_heads: int,
                  checkpoint: str) -> Dict:
    """``model`` overrides that fit a ViT base config to a backbone.

    Args:
        base_model (Mapping): ``model`` of the base config (mmpretrain
            ``VisionTransformer`` or ``MoCoV3ViT`` backbone).
        info (Mapping): :func:`infer_vit_arch` of the weights.
        num_heads (int): Attention heads (must divide the width).
        checkpoint (str): The backbone file, for ``init_cfg.checkpoint``.

    Returns:
        dict: To merge into the base's ``model``; ``arch`` replaces the
        base's (``_delete_``).

    Raises:
        ValueError: ``num_heads`` does not divide the width, the ViT has
            fewer blocks than the base reads, or the base has another
            neck.
    """
    arch = dict(info['arch'])
    dims, layers = arch['embed_dims'], arch['num_layers']
    if not isinstance(num_heads, int) or num_heads < 1 \
            or dims % num_heads:
        raise ValueError(f'num_heads={num_heads!r} does not divide the '
                         f'{dims} dims of the ViT')
    base_backbone = base_model['backbone']
    num_outs = len(base_backbone['out_indices'])
    if base_model.get('neck'):  # multi-level features: spread
        out_indices = spread_out_indices(layers, num_outs)
    else:  # a linear probe: the last blocks
        if layers < num_outs:
            raise ValueError(f'the base reads {num_outs} blocks, the ViT '
                             f'has {layers}')
        out_indices = list(range(layers - num_outs, layers))
    backbone = dict(
        arch=dict(
            _delete_=True,
            embed_dims=dims,
            num_layers=layers,
            num_heads=num_heads,
            feedforward_channels=arch['feedforward_channels']),
        patch_size=info['patch_size'],
        qkv_bias=info['qkv_bias'],
        final_norm=info['final_norm'],
        out_indices=out_indices,
        init_cfg=dict(checkpoint=checkpoint))
    if base_backbone.get('frozen_stages', -1) > 0:  # frozen: all of it
        backbone['frozen_stages'] = layers
    cfg = dict(backbone=backbone)
    cfg.update(_necks_and_heads(base_model, [dims] * num_outs))
    return cfg


def resnet_model_cfg(base_model: Mapping, arch: Mapping,
                     checkpoint: str) -> Dict:
    """``model`` overrides that fit a ResNet base config to a backbone.

    Args:
        base_model (Mapping): ``model`` of the base config (mmpretrain
            ``ResNet`` backbone, no neck).
        arch (Mapping): :func:`infer_resnet_arch` of the weights.
        checkpoint (str): The backbone file, for ``init_cfg.checkpoint``.

    Returns:
        dict: To merge into the base's ``model``.

    Raises:
        ValueError: The base has a neck.
    """
    if base_model.get('neck'):
        raise ValueError('ResNet base configs with a neck are not supported')
    expansion = 4 if arch['block'] == 'bottleneck' else 1
    stages = [arch['base_channels'] * 2**i * expansion for i in range(4)]
    widths = [stages[i] for i in base_model['backbone']['out_indices']]
    cfg = dict(
        backbone=dict(
            depth=arch['depth'],
            stem_channels=arch['stem_channels'],
            base_channels=arch['base_channels'],
            init_cfg=dict(checkpoint=checkpoint)))
    cfg.update(_necks_and_heads(base_model, widths))
    return cfg


# ----------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------
def _format(value: Any, indent: int = 0) -> str:
    """Python source of a config value: dicts as ``dict(...)``, one key a
    line; anything else as its ``repr`` (lists of numbers stay on a line).
    """
    if isinstance(value, Mapping):
        pad = ' ' * (indent + 4)
        items = [f'{pad}{k}={_format(v, indent + 4)}' for k, v in value.items()]
        return 'dict(\n' + ',\n'.join(items) + ')'
    return repr(value)


def render_config(base: str, model: Mapping, out: str,
                  comment: str = '') -> str:
    """The text of a config inheriting ``base`` with ``model`` overrides.

    Args:
        base (str): The base config file.
        model (Mapping): Overrides of ``model``.
        out (str): Where the text will be written: ``_base_`` is relative
            to its folder (mmengine's rule) unless the two share no folder
            below the root.
        comment (str): Lines put first, as ``#`` comments.

    Returns:
        str: Python config text.
    """
    out_dir = osp.dirname(osp.abspath(out))
    base = osp.abspath(base)
    common = osp.commonpath([out_dir, base])
    ref = osp.relpath(base, out_dir) if common != osp.sep else base
    body = f'model = {_format(model)}\n'
    lines = [f'# {line}'.rstrip() for line in comment.splitlines()]
    lines.append(f'_base_ = [{ref!r}]')
    return '\n'.join(lines) + '\n' + body


def default_config_path(dst: str, base: str) -> str:
    """``<dst without extension>_<base name>``, next to the weights."""
    stem = osp.splitext(dst)[0]
    return f'{stem}_{osp.basename(base)}'


def add_config_arguments(parser: argparse.ArgumentParser,
                         vit: bool = True) -> None:
    """The ``--config-out`` options of the model converters.

    Args:
        parser (argparse.ArgumentParser): The converter's parser.
        vit (bool): Add ``--num-heads`` (ViT converters).
    """
    group = parser.add_argument_group(
        'MMSegmentation config',
        'write a config that inherits a benchmark config of '
        'configs/benchmarks/mmsegmentation/ with the architecture of the '
        'converted backbone; its init_cfg.checkpoint is DST as given (a '
        'relative DST resolves from the folder tools/train.py runs in)')
    group.add_argument(
        '--config-out',
        nargs='?',
        const='',
        default=None,
        metavar='PATH',
        help='write the config to PATH (no PATH: next to DST, named '
        'DST-stem_<base config name>)')
    group.add_argument(
        '--head',
        choices=HEADS,
        help='head protocol of the base config (default: linear)')
    group.add_argument(
        '--dataset',
        choices=DATASETS,
        help='data set of the base config (default: voc12aug)')
    group.add_argument(
        '--mmseg-base',
        metavar='CONFIG',
        help='inherit this config instead of the one --head/--dataset pick')
    if vit:
        group.add_argument(
            '--num-heads',
            type=int,
            help='attention heads of the ViT (default: what the checkpoint '
            'records in its training config, else 64 dims per head for '
            'ViT-T/S/B/L widths)')


def resolve_num_heads(arch: Mapping,
                      checkpoint: Any = None,
                      num_heads: Optional[int] = None,
                      required: bool = False) -> Optional[int]:
    """The number of attention heads of a ViT backbone.

    Args:
        arch (Mapping): ``arch`` of :func:`infer_vit_arch` (its
            ``num_heads`` is a guess for the standard widths, None else).
        checkpoint (Any): The loaded checkpoint, see
            :func:`num_heads_from_checkpoint`.
        num_heads (int, optional): Given by the user; wins.
        required (bool): Raise when nothing says (a config will be
            written). Defaults to False.

    Returns:
        int or None: The user's, else the checkpoint's record, else the
        standard-width guess; None when nothing says.

    Raises:
        ValueError: The number does not divide the width, or is unknown
            and ``required``.
    """
    heads = num_heads or num_heads_from_checkpoint(checkpoint) or \
        arch.get('num_heads')
    if heads is None and required:
        raise ValueError(
            f'the number of attention heads of this {arch["embed_dims"]}-d '
            'ViT is neither in its weights nor in the checkpoint: pass '
            '--num-heads')
    if heads is not None and (heads < 1 or arch['embed_dims'] % heads):
        raise ValueError(f'num_heads={heads} does not divide the '
                         f'{arch["embed_dims"]} dims of the ViT')
    return heads


def write_config_from_args(args: argparse.Namespace, family: str,
                           info: Mapping, tool: str) -> Optional[str]:
    """Write the config ``args`` ask for (``--config-out``), if any.

    The file is read back with mmengine before this returns.

    Args:
        args (argparse.Namespace): Parsed with :func:`add_config_arguments`;
            ``args.dst`` is the converted weights.
        family (str): 'vit' (``info`` from ``infer_vit_arch``, with
            ``arch['num_heads']`` resolved, see :func:`resolve_num_heads`)
            or 'resnet' (``info`` from ``infer_resnet_arch``).
        info (Mapping): The backbone's architecture.
        tool (str): The converter, named in the config's header.

    Returns:
        str or None: The config written, None without ``--config-out``.

    Raises:
        ValueError: Bad options, or a ViT whose number of heads is
            unknown.
        FileNotFoundError: ``--mmseg-base`` does not exist.
    """
    chosen = [
        f'--{k.replace("_", "-")}' for k in ('head', 'dataset', 'mmseg_base')
        if getattr(args, k) is not None
    ]
    if args.config_out is None:
        if chosen:
            raise ValueError(f'{" ".join(chosen)} only apply with '
                             '--config-out')
        return None
    from mmengine.config import Config
    if args.mmseg_base:
        if args.head or args.dataset:
            raise ValueError('--mmseg-base replaces --head/--dataset')
        base = args.mmseg_base
        if not osp.isfile(base):
            raise FileNotFoundError(f'--mmseg-base {base} does not exist')
    else:
        base = find_base_config(family, args.head or 'linear',
                                args.dataset or 'voc12aug')
    base_model = Config.fromfile(base).model
    backbone_type = str(base_model.get('backbone', {}).get('type', ''))
    if ('ResNet' in backbone_type) != (family == 'resnet'):
        raise ValueError(f'{base} is for a {backbone_type or "unknown"} '
                         f'backbone, the weights are a {family}')
    if family == 'vit':
        a = info['arch']
        if not a.get('num_heads'):
            raise ValueError(
                f'the number of attention heads of this {a["embed_dims"]}-d '
                'ViT is neither in its weights nor in the checkpoint: pass '
                '--num-heads')
        model = vit_model_cfg(base_model, info, a['num_heads'], args.dst)
        what = (f'ViT, {a["embed_dims"]} dims, {a["num_layers"]} blocks, '
                f'{a["num_heads"]} heads, patch {info["patch_size"]}')
    elif family == 'resnet':
        model = resnet_model_cfg(base_model, info, args.dst)
        what = (f'ResNet-{info["depth"]}, stem {info["stem_channels"]}, '
                f'base {info["base_channels"]} channels')
    else:
        raise ValueError(f'family must be "vit" or "resnet", got {family!r}')
    out = args.config_out or default_config_path(args.dst, base)
    comment = (f'{osp.basename(base)} for the backbone in {args.dst}\n'
               f'({what}), written by {tool}.\n'
               'init_cfg.checkpoint: a relative path resolves from the '
               'folder\ntools/train.py runs in.')
    text = render_config(base, model, out, comment)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        f.write(text)
    Config.fromfile(out)  # the written file reads (base found, valid)
    return out
