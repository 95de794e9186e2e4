# Copyright (c) cribo-mm contributors. All rights reserved.
"""mmpretrain's ViT with a choice of position-embedding interpolation."""
from typing import Any, Tuple

import torch
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed
from torch import Tensor

from cribo_mm.registry import MODELS
from .pos_embed import resize_pos_embed_by_scale

__all__ = [
    'CrIBoVisionTransformer', 'POS_EMBED_INTERPOLATIONS',
    'with_pos_embed_interp', 'default_pos_embed_interp'
]

#: ``'size'``: mmpretrain's resize to the explicit grid size;
#: ``'reference'``: the authors' scale factor with a +0.1 offset.
POS_EMBED_INTERPOLATIONS = ('size', 'reference')


@MODELS.register_module()
class CrIBoVisionTransformer(VisionTransformer):
    """mmpretrain ``VisionTransformer`` whose position embedding can be
    resized as in the CrIBo reference code.

    Same parameters and state-dict keys as ``VisionTransformer`` (its
    checkpoints load unchanged, and any ``VisionTransformer`` config can
    switch ``type``). Only inputs whose patch grid differs from the one the
    embedding was built for (e.g. not 224x224 for ``img_size=224``) are
    affected: with ``pos_embed_interp='reference'`` the grid is resized by
    :func:`resize_pos_embed_by_scale` (bicubic, scale factor
    ``(h + 0.1) / 14``) so that tokens match the authors' network for
    converted official checkpoints; ``'size'`` (default) is mmpretrain's
    behaviour. In mmseg configs use
    ``type='mmpretrain.CrIBoVisionTransformer'``.

    Args:
        pos_embed_interp (str): ``'size'`` or ``'reference'``.
            Defaults to ``'size'``.
        **kwargs: Arguments of ``mmpretrain.models.VisionTransformer``.
    """

    def __init__(self, *args, pos_embed_interp: str = 'size', **kwargs):
        super().__init__(*args, **kwargs)
        self.pos_embed_interp = pos_embed_interp

    @property
    def pos_embed_interp(self) -> str:
        """str: The position-embedding interpolation in use."""
        return self._pos_embed_interp

    @pos_embed_interp.setter
    def pos_embed_interp(self, value: str) -> None:
        if value not in POS_EMBED_INTERPOLATIONS:
            raise ValueError(f'pos_embed_interp must be one of '
                             f'{POS_EMBED_INTERPOLATIONS}, got {value!r}')
        self._pos_embed_interp = value

    def resized_pos_embed(self, patch_resolution: Tuple[int, int]) -> Tensor:
        """The position embedding for a (h, w) patch grid.

        Args:
            patch_resolution (tuple[int, int]): Grid of the input.

        Returns:
            Tensor: Shape (1, num_extra_tokens + h * w, C).
        """
        resize = (resize_pos_embed_by_scale if self.pos_embed_interp
                  == 'reference' else resize_pos_embed)
        return resize(
            self.pos_embed,
            self.patch_resolution,
            patch_resolution,
            mode=self.interpolate_mode,
            num_extra_tokens=self.num_extra_tokens)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Tokens of a batch, as ``VisionTransformer.forward``.

        Args:
            x (Tensor): Images of shape (B, 3, H, W).

        Returns:
            tuple[Tensor]: One output per ``out_indices`` entry, formatted
            by ``out_type`` (e.g. (B, 1 + h*w, C) for ``'raw'``).
        """
        batch = x.shape[0]
        x, patch_resolution = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(batch, -1, -1), x), dim=1)
        x = x + self.resized_pos_embed(patch_resolution)
        x = self.drop_after_pos(x)
        x = self.pre_norm(x)
        outs = []
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i == last and self.final_norm:
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(self._format_output(x, patch_resolution))
        return tuple(outs)


def with_pos_embed_interp(backbone_cfg: dict, backbone_cls: type,
                          mode: str) -> dict:
    """A ViT backbone config switched to a position-embedding interpolation.

    Args:
        backbone_cfg (dict): Config of an mmpretrain ``VisionTransformer``
            (or of this class).
        backbone_cls (type): The class ``backbone_cfg['type']`` names.
        mode (str): One of :data:`POS_EMBED_INTERPOLATIONS`.

    Returns:
        dict: A copy with ``type=CrIBoVisionTransformer`` and
        ``pos_embed_interp=mode`` (same parameters and state-dict keys).

    Raises:
        ValueError: If ``mode`` is unknown or the backbone is not an
            mmpretrain ``VisionTransformer``.
    """
    if mode not in POS_EMBED_INTERPOLATIONS:
        raise ValueError(f'pos_embed_interp must be one of '
                         f'{POS_EMBED_INTERPOLATIONS}, got {mode!r}')
    if not (isinstance(backbone_cls, type)
            and (backbone_cls is VisionTransformer
                 or issubclass(backbone_cls, CrIBoVisionTransformer))):
        name = getattr(backbone_cls, '__name__', backbone_cls)
        raise ValueError(
            'the position-embedding interpolation can only be chosen for an '
            f'mmpretrain VisionTransformer backbone, not {name}')
    cfg = dict(backbone_cfg)
    cfg['type'] = CrIBoVisionTransformer
    cfg['pos_embed_interp'] = mode
    return cfg


def default_pos_embed_interp(checkpoint: Any) -> str:
    """The interpolation a checkpoint should be evaluated with.

    Args:
        checkpoint (Any): A loaded checkpoint.

    Returns:
        str: ``'reference'`` for weights converted from the authors'
        release by ``tools/model_converters/official2cribo_mm.py``
        (``meta.converted_from``), ``'size'`` otherwise.
    """
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    source = meta.get('converted_from', '') if isinstance(meta, dict) else ''
    return ('reference' if str(source).startswith('official') else 'size')
