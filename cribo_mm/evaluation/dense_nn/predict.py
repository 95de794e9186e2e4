# Copyright (c) cribo-mm contributors. All rights reserved.
"""From patch-level class distributions to a dense segmentation."""
from typing import Sequence

import torch.nn.functional as F
from torch import Tensor

__all__ = ['predict_segmentation', 'upsample_patch_scores']


def upsample_patch_scores(patch_scores: Tensor,
                          out_size: Sequence[int]) -> Tensor:
    """Bilinearly upsample patch-level class scores to a pixel grid.

    Args:
        patch_scores (Tensor): Scores of shape (B, h, w, C) (channels last,
            as produced per patch) or (h, w, C).
        out_size (Sequence[int]): Output (H, W), usually the label size.

    Returns:
        Tensor: Scores of shape (B, C, H, W) (or (C, H, W) without a batch
        dimension), float32.
    """
    squeeze = patch_scores.dim() == 3
    if squeeze:
        patch_scores = patch_scores[None]
    if patch_scores.dim() != 4:
        raise ValueError('patch_scores must have shape (B, h, w, C) or '
                         f'(h, w, C), got {tuple(patch_scores.shape)}')
    scores = patch_scores.permute(0, 3, 1, 2).float()
    scores = F.interpolate(
        scores,
        size=tuple(int(s) for s in out_size),
        mode='bilinear',
        align_corners=False)
    return scores[0] if squeeze else scores


def predict_segmentation(patch_scores: Tensor,
                         out_size: Sequence[int]) -> Tensor:
    """Dense prediction: bilinear upsampling of patch scores, then argmax.

    Args:
        patch_scores (Tensor): Scores of shape (B, h, w, C) or (h, w, C),
            e.g. the output of :func:`knn_label_transfer` reshaped to the
            patch grid.
        out_size (Sequence[int]): Output (H, W).

    Returns:
        Tensor: int64 label map of shape (B, H, W) (or (H, W)).
    """
    scores = upsample_patch_scores(patch_scores, out_size)
    return scores.argmax(dim=-3)
