# Copyright (c) cribo-mm contributors. All rights reserved.
"""Backbones for dense retrieval: building, weight loading (through the
project's checkpoint policy) and patch-feature extraction."""
import importlib
import inspect
import logging
import os.path as osp
import warnings
from typing import (Callable, Dict, Iterable, Optional, Sequence, Tuple,
                    Union)

import torch
from torch import Tensor, nn

from cribo_mm.utils.checkpoint_io import load_checkpoint_file

__all__ = [
    'build_backbone', 'training_init', 'select_backbone_state_dict',
    'load_backbone_weights', 'extract_patch_features', 'infer_patch_size',
    'IMAGENET_MEAN', 'IMAGENET_STD', 'AUTO_PREFIXES'
]

#: ImageNet mean and std in RGB order, 0-255 scale.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

#: Prefixes tried in order by ``prefix='auto'``: the teacher backbone of a
#: cribo-mm pretraining checkpoint, the student backbone, a DDP-wrapped
#: student backbone; otherwise the keys are used as they are.
AUTO_PREFIXES = ('teacher.module.0.', 'backbone.', 'module.backbone.')

_VIT_SPEC = 'vit:'


def _state_dict_of(checkpoint) -> Dict[str, Tensor]:
    """The tensor dict inside a checkpoint object."""
    if isinstance(checkpoint, nn.Module):
        return checkpoint.state_dict()
    if not isinstance(checkpoint, dict):
        raise TypeError(f'Unsupported checkpoint type {type(checkpoint)}')
    for key in ('state_dict', 'model', 'teacher', 'student'):
        inner = checkpoint.get(key)
        if isinstance(inner, dict) and any(
                isinstance(v, Tensor) for v in inner.values()):
            return inner
    return {k: v for k, v in checkpoint.items() if isinstance(v, Tensor)}


def select_backbone_state_dict(checkpoint,
                               prefix: str = 'auto',
                               expected_keys: Optional[Iterable[str]] = None
                               ) -> Tuple[Dict[str, Tensor], str]:
    """Pick the backbone weights out of a checkpoint and strip their prefix.

    Args:
        checkpoint (dict): A loaded checkpoint: a Runner checkpoint, a
            ``{'state_dict': ...}`` file or a bare state dict.
        prefix (str): Key prefix of the backbone. ``'auto'`` tries
            :data:`AUTO_PREFIXES` in order (so the teacher backbone wins
            over the student in pretraining checkpoints) and otherwise uses
            the keys unchanged; ``''`` uses them unchanged.
            Defaults to ``'auto'``.
        expected_keys (Iterable[str], optional): Keys of the target
            backbone; with ``'auto'``, a prefix is accepted only if some
            stripped key is among them.

    Returns:
        tuple[dict, str]: The stripped state dict and the prefix used.
    """
    state = _state_dict_of(checkpoint)
    expected = set(expected_keys) if expected_keys is not None else None

    def strip(pfx: str) -> Dict[str, Tensor]:
        return {k[len(pfx):]: v for k, v in state.items() if k.startswith(pfx)}

    if prefix != 'auto':
        selected = strip(prefix)
        if not selected:
            raise KeyError(f'No checkpoint key starts with {prefix!r}; '
                           f'first keys: {list(state)[:5]}')
        return selected, prefix
    for pfx in AUTO_PREFIXES:
        selected = strip(pfx)
        if selected and (expected is None or expected & set(selected)):
            return selected, pfx
    return dict(state), ''


def infer_patch_size(backbone: nn.Module,
                     default: Optional[int] = None,
                     probe_size: int = 256) -> int:
    """Feature stride of a backbone: the patch size of a ViT, or the output
    stride of a CNN (32 for a ResNet, 16 with a dilated last stage).

    A ViT-like backbone is read from its patch embedding. Otherwise, a
    zero image of ``probe_size`` pixels is passed through the backbone
    (eval mode, no gradient) and the stride is the ratio of the input size
    to the last feature map's size.

    Args:
        backbone (nn.Module): The backbone.
        default (int, optional): Returned when the probe gives no feature
            map; None raises instead. Defaults to None.
        probe_size (int): Side of the probe image. Defaults to 256.

    Returns:
        int: The stride in pixels.
    """
    embed = getattr(backbone, 'patch_embed', None)
    for name in ('projection', 'proj'):
        conv = getattr(embed, name, None)
        stride = getattr(conv, 'stride', None)
        if stride is not None:
            return int(stride[0] if isinstance(stride, Sequence) else stride)
    size = getattr(backbone, 'patch_size', None)
    if size is not None:
        return int(size[0] if isinstance(size, Sequence) else size)
    return _probe_stride(backbone, default, probe_size)


def _probe_stride(backbone: nn.Module, default: Optional[int],
                  probe_size: int) -> int:
    """Output stride of a convolutional backbone, by a dry forward."""
    was_training = backbone.training
    param = next(backbone.parameters(), None)
    device = param.device if param is not None else 'cpu'
    backbone.eval()
    try:
        with torch.no_grad():
            out = backbone(
                torch.zeros(1, 3, probe_size, probe_size, device=device))
    finally:
        backbone.train(was_training)
    while isinstance(out, (tuple, list)) and out:
        out = out[-1]
    if isinstance(out, Tensor) and out.dim() == 4 and out.shape[-1] > 0:
        stride, rest = divmod(probe_size, out.shape[-1])
        if rest == 0 and probe_size // stride == out.shape[-2]:
            return stride
    if default is not None:
        return default
    raise ValueError(
        f'cannot infer the feature stride of {type(backbone).__name__}: a '
        f'{probe_size}x{probe_size} input gives '
        f'{getattr(out, "shape", type(out).__name__)}; pass the patch size')


def _load_config(spec, cfg_options: Optional[dict]):
    from mmengine.config import Config
    cfg = spec if isinstance(spec, Config) else Config.fromfile(spec)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    imports = cfg.get('custom_imports')
    if imports:
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**imports)
    return cfg


def training_init(spec: Union[str, dict], cfg_options: Optional[dict] = None
                  ) -> Optional[Callable[[nn.Module], nn.Module]]:
    """The initialisation a pretraining config gives its backbone, when it
    is not the backbone's own ``init_weights``.

    A CrIBo config (``model.type='CrIBo'``, ``reference_init=True``, the
    default) starts training from :func:`reference_vit_init`; evaluating
    random weights "as training starts" must use it too.

    Args:
        spec (str | dict | Config): As :func:`build_backbone`.
        cfg_options (dict, optional): Overrides merged into a config file.

    Returns:
        callable | None: The in-place init function, or None when the
        backbone's own initialisation is the training's.
    """
    if isinstance(spec, str) and (spec.startswith(_VIT_SPEC)
                                  or not osp.isfile(spec)):
        return None
    if isinstance(spec, dict) and not hasattr(spec, 'filename'):
        return None
    model_cfg = _load_config(spec, cfg_options).get('model') or {}
    model_type = str(model_cfg.get('type', '')).split('.')[-1]
    if model_type == 'CrIBo' and model_cfg.get('reference_init', True):
        from cribo_mm.models.backbones import reference_vit_init
        return reference_vit_init
    return None


def build_backbone(spec: Union[str, dict],
                   cfg_options: Optional[dict] = None,
                   default_scope: str = 'mmpretrain',
                   pos_embed_interp: Optional[str] = None) -> nn.Module:
    """Build a backbone that yields patch tokens.

    Args:
        spec (str | dict | Config): One of

            - a config file (or ``mmengine.Config``) with ``model.backbone``
              (or a top-level ``backbone``), e.g. a cribo-mm pretraining
              config, an mmpretrain classification config or an mmseg
              config;
            - ``'vit:<arch>'`` for a plain mmpretrain ``VisionTransformer``
              of that arch with 16x16 patches (e.g. ``'vit:deit-small'``,
              ``'vit:base'``);
            - a backbone config dict.

            ``init_cfg`` and ``pretrained`` are dropped, so nothing is
            downloaded. Backbones whose class takes ``out_type`` (mmpretrain
            ``VisionTransformer`` and subclasses) get ``out_type='raw'``
            unless it is ``'raw'`` or ``'featmap'`` already.
        cfg_options (dict, optional): Overrides merged into a config file.
        default_scope (str): Registry scope for names without a prefix when
            the config sets no ``default_scope``.
            Defaults to ``'mmpretrain'``.
        pos_embed_interp (str, optional): ``'size'`` or ``'reference'``:
            build an mmpretrain ViT as ``CrIBoVisionTransformer`` with this
            position-embedding interpolation (``'reference'``: the authors'
            scale factor, for their converted checkpoints). None keeps the
            config's backbone. Defaults to None.

    Returns:
        nn.Module: The backbone in eval mode, weights initialised by its
        ``init_weights``.
    """
    from mmengine.registry import DefaultScope

    import cribo_mm  # noqa: F401  (registers cribo-mm components)
    from cribo_mm.registry import MODELS

    scope = default_scope
    if isinstance(spec, str) and spec.startswith(_VIT_SPEC):
        backbone_cfg = dict(
            type='VisionTransformer',
            arch=spec[len(_VIT_SPEC):],
            patch_size=16,
            out_type='raw')
    elif isinstance(spec, dict) and not hasattr(spec, 'filename'):
        backbone_cfg = dict(spec)
    else:
        if isinstance(spec, str) and not osp.isfile(spec):
            raise FileNotFoundError(
                f'{spec} is neither a config file nor "vit:<arch>"')
        cfg = _load_config(spec, cfg_options)
        model_cfg = cfg.get('model') or {}
        backbone_cfg = model_cfg.get('backbone') or cfg.get('backbone')
        if backbone_cfg is None:
            raise KeyError(f'{spec} defines neither model.backbone nor '
                           'backbone')
        backbone_cfg = backbone_cfg.to_dict() if hasattr(
            backbone_cfg, 'to_dict') else dict(backbone_cfg)
        scope = cfg.get('default_scope') or default_scope
    backbone_cfg.pop('init_cfg', None)
    backbone_cfg.pop('pretrained', None)
    type_name = backbone_cfg.get('type')
    if isinstance(type_name, str) and type_name.startswith('mmseg.'):
        importlib.import_module('mmseg.models')
    with DefaultScope.overwrite_default_scope(scope):
        with MODELS.switch_scope_and_registry(None) as registry:
            cls = registry.get(type_name) if isinstance(type_name,
                                                        str) else type_name
        if cls is None:
            raise KeyError(f'{type_name} is not registered (scope {scope})')
        # (a subclass may take it through **kwargs)
        takes_out_type = any(
            'out_type' in inspect.signature(c.__init__).parameters
            for c in getattr(cls, '__mro__', (cls, ))
            if '__init__' in vars(c))
        if takes_out_type and backbone_cfg.get(
                'out_type') not in ('raw', 'featmap'):
            backbone_cfg['out_type'] = 'raw'
        if pos_embed_interp is not None:
            from cribo_mm.models.backbones import with_pos_embed_interp
            backbone_cfg = with_pos_embed_interp(backbone_cfg, cls,
                                                 pos_embed_interp)
        backbone = MODELS.build(backbone_cfg)
    if hasattr(backbone, 'init_weights'):
        _quiet_init_weights(backbone)
    backbone.eval()  # (mmpretrain's ``train()`` does not return self)
    return backbone


def _quiet_init_weights(module: nn.Module) -> None:
    """``init_weights`` without mmengine's per-parameter INFO lines."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        module.init_weights()
    finally:
        logger.setLevel(level)


def load_backbone_weights(backbone: nn.Module,
                          checkpoint: Union[str, dict],
                          prefix: str = 'auto',
                          allow_unsafe: bool = False) -> dict:
    """Load backbone weights from a checkpoint file or object.

    Args:
        backbone (nn.Module): Target backbone.
        checkpoint (str | dict): Path (loaded with
            :func:`cribo_mm.utils.checkpoint_io.load_checkpoint_file`) or a
            loaded checkpoint.
        prefix (str): See :func:`select_backbone_state_dict`.
            Defaults to ``'auto'``.
        allow_unsafe (bool): Unpickle the file without restrictions (the
            tool's ``--unsafe-load``; warns). False follows
            ``CRIBO_UNSAFE_LOAD``. Defaults to False.

    Returns:
        dict: ``prefix`` used, ``loaded`` (number of tensors), and the
        ``missing_keys``/``unexpected_keys`` lists.
    """
    if isinstance(checkpoint, str):
        checkpoint = load_checkpoint_file(
            checkpoint, unsafe=True if allow_unsafe else None)
    own_keys = backbone.state_dict().keys()
    state, used = select_backbone_state_dict(checkpoint, prefix, own_keys)
    matched = set(state) & set(own_keys)
    if not matched:
        raise KeyError('No checkpoint tensor matches the backbone (prefix '
                       f'{used!r}); checkpoint keys start with '
                       f'{list(state)[:5]}, backbone keys with '
                       f'{list(own_keys)[:5]}')
    result = backbone.load_state_dict(state, strict=False)
    missing = list(result.missing_keys)
    if missing:
        warnings.warn(f'{len(missing)} backbone tensors not in the '
                      f'checkpoint (random): {missing[:8]}')
    return dict(
        prefix=used,
        loaded=len(matched),
        missing_keys=missing,
        unexpected_keys=list(result.unexpected_keys))


@torch.no_grad()
def extract_patch_features(backbone: nn.Module, images: Tensor,
                           patch_size: int) -> Tensor:
    """Patch features of a batch of (already normalised) images.

    Handles the usual backbone outputs: a tuple/list of stages (the last
    is used; an ``[featmap, cls_token]`` pair is reduced to the map), token
    sequences (B, N, D) whose leading ``N - h*w`` tokens (class/register
    tokens) are dropped, and feature maps (B, D, h, w).

    Args:
        backbone (nn.Module): Backbone in eval mode.
        images (Tensor): Images of shape (B, 3, H, W), H and W multiples of
            ``patch_size``.
        patch_size (int): Token stride in pixels.

    Returns:
        Tensor: Features of shape (B, H/p, W/p, D) (not normalised).
    """
    b, _, height, width = images.shape
    h, w = height // patch_size, width // patch_size
    out = backbone(images)
    while isinstance(out, (tuple, list)):
        first, last = out[0], out[-1]
        if (len(out) == 2 and isinstance(last, Tensor) and last.dim() == 2
                and isinstance(first, Tensor) and first.dim() in (3, 4)):
            out = first  # a (patch tokens, class token) pair
        else:
            out = last  # the last stage
    if out.dim() == 4:
        if tuple(out.shape[2:]) != (h, w):
            raise ValueError(f'feature map {tuple(out.shape[2:])} does not '
                             f'match the patch grid {(h, w)}')
        return out.permute(0, 2, 3, 1).contiguous()
    if out.dim() == 3:
        extra = out.shape[1] - h * w
        if extra < 0:
            raise ValueError(f'{out.shape[1]} tokens for a {h}x{w} grid')
        return out[:, extra:].reshape(b, h, w, -1).contiguous()
    raise ValueError(f'Unsupported backbone output of shape '
                     f'{tuple(out.shape)}; use a backbone returning patch '
                     "tokens (e.g. out_type='raw' or 'featmap')")
