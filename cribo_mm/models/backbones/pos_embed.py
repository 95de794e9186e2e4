# Copyright (c) cribo-mm contributors. All rights reserved.
"""Position-embedding resizing as the CrIBo / DINO reference code does it."""
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['resize_pos_embed_by_scale']


def resize_pos_embed_by_scale(pos_embed: Tensor,
                              src_shape: Sequence[int],
                              dst_shape: Sequence[int],
                              mode: str = 'bicubic',
                              num_extra_tokens: int = 1,
                              offset: float = 0.1) -> Tensor:
    """Resize a ViT position embedding with a scale factor, as the reference.

    The authors' code (DINO's ``interpolate_pos_encoding``) interpolates
    the (src_h, src_w) grid with ``scale_factor = ((h + offset) / src_h,
    (w + offset) / src_w)`` rather than to an explicit output size (what
    mmpretrain's ``resize_pos_embed`` does). The output has the same size
    (the offset only guards the floor against rounding), but the sampling
    positions differ, so the values do (up to ~0.035 in the tokens of a
    small ViT at 160x128 px). A grid that already has the target shape is
    returned unchanged.

    Args:
        pos_embed (Tensor): Shape (1, num_extra_tokens + src_h * src_w, C).
        src_shape (Sequence[int]): (src_h, src_w) of the stored grid.
        dst_shape (Sequence[int]): (h, w) patch grid of the input.
        mode (str): Interpolation mode. Defaults to 'bicubic'.
        num_extra_tokens (int): Leading tokens (class token) kept as they
            are. Defaults to 1.
        offset (float): Added to the target grid size in the scale factor.
            Defaults to 0.1.

    Returns:
        Tensor: Shape (1, num_extra_tokens + h * w, C).

    Raises:
        ValueError: If ``pos_embed`` does not hold ``src_h * src_w`` grid
            tokens.
    """
    src_h, src_w = (int(v) for v in src_shape)
    h, w = (int(v) for v in dst_shape)
    if (src_h, src_w) == (h, w):
        return pos_embed
    if pos_embed.dim() != 3 or \
            pos_embed.shape[1] != num_extra_tokens + src_h * src_w:
        raise ValueError(
            f'pos_embed of shape {tuple(pos_embed.shape)} does not hold '
            f'{num_extra_tokens} extra tokens and a {src_h}x{src_w} grid')
    extra = pos_embed[:, :num_extra_tokens]
    grid = pos_embed[:, num_extra_tokens:]
    channels = grid.shape[-1]
    grid = grid.reshape(1, src_h, src_w, channels).permute(0, 3, 1, 2)
    grid = F.interpolate(
        grid,
        scale_factor=((h + offset) / src_h, (w + offset) / src_w),
        mode=mode)
    # the offset keeps floor((h + offset) / src_h * src_h) == h
    assert tuple(grid.shape[-2:]) == (h, w), grid.shape
    grid = grid.flatten(2).transpose(1, 2)
    return torch.cat([extra, grid], dim=1)
