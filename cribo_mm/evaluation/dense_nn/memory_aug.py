# Copyright (c) cribo-mm contributors. All rights reserved.
"""Memory-side augmentation recipes of the dense NN retrieval.

``'default'`` (ours, in :class:`~.data.RetrievalSegDataset`): the whole
image resized to the input size, horizontal flip (p = 0.5) and a strong
colour jitter (p = 0.8). ``'hbird'``: the recipe of the public
open-hummingbird-eval implementation, written here from its description:

1. four independent weak colour jitters on the full image, in this order,
   each applied with p = 0.5: brightness, contrast and saturation factors
   uniform in [0.9, 1.1], hue shift uniform in [-0.1, 0.1];
2. one random resized crop shared by image and label: area scale uniform in
   [0.5, 2] of the image, log-uniform aspect ratio in [3/4, 4/3], up to 10
   draws for a crop that fits, else the centre crop with the aspect ratio
   clamped to that range (torchvision's ``RandomResizedCrop`` rule: areas
   above the image never fit and are drawn again, so in effect the area
   lies in [0.5, 1], small ones more often, and about one crop in eight
   ends as the centre crop after 10 misses, e.g. 13 % for a 4:3 image);
   the crop is resized to the input size, bilinearly with antialiasing for
   the image and nearest for the label;
3. no flip.
"""
import math
from typing import Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'MEMORY_AUGMENTATIONS', 'hbird_crop_params', 'hbird_jitter',
    'hbird_augment'
]

#: Values of ``DenseNNSettings.memory_aug`` / ``--memory-aug``.
MEMORY_AUGMENTATIONS = ('default', 'hbird')

HBIRD_SCALE = (0.5, 2.0)
HBIRD_RATIO = (3. / 4., 4. / 3.)
HBIRD_JITTER = 0.1
HBIRD_JITTER_PROB = 0.5


def hbird_crop_params(height: int,
                      width: int,
                      rng: np.random.Generator,
                      scale: Sequence[float] = HBIRD_SCALE,
                      ratio: Sequence[float] = HBIRD_RATIO,
                      attempts: int = 10) -> Tuple[int, int, int, int]:
    """Random resized crop box (torchvision's sampling rule).

    Args:
        height (int): Image height.
        width (int): Image width.
        rng (np.random.Generator): Random generator.
        scale (Sequence[float]): Range of the crop area relative to the
            image. Defaults to (0.5, 2.0).
        ratio (Sequence[float]): Range of width / height (sampled
            log-uniformly). Defaults to (3/4, 4/3).
        attempts (int): Draws before the centre-crop fallback.
            Defaults to 10.

    Returns:
        tuple[int, int, int, int]: ``(top, left, crop_h, crop_w)``, inside
        the image.
    """
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(attempts):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def hbird_jitter(image: Tensor, rng: np.random.Generator,
                 strength: float = HBIRD_JITTER,
                 prob: float = HBIRD_JITTER_PROB) -> Tensor:
    """Four separate weak colour jitters (brightness, contrast, saturation,
    hue, in this order), each applied with probability ``prob``.

    Args:
        image (Tensor): (3, H, W) float RGB in [0, 255].
        rng (np.random.Generator): Random generator.
        strength (float): Jitter range: factors in [1 - s, 1 + s], hue
            shift in [-s, s]. Defaults to 0.1.
        prob (float): Probability of each jitter. Defaults to 0.5.

    Returns:
        Tensor: (3, H, W) float RGB in [0, 255].
    """
    import torchvision.transforms.functional as TF
    out = image.clamp(0, 255) / 255.
    ops = (
        (TF.adjust_brightness, (1 - strength, 1 + strength)),
        (TF.adjust_contrast, (1 - strength, 1 + strength)),
        (TF.adjust_saturation, (1 - strength, 1 + strength)),
        (TF.adjust_hue, (-strength, strength)),
    )
    for op, (lo, hi) in ops:
        if rng.random() < prob:
            out = op(out, float(rng.uniform(lo, hi)))
    return out.clamp_(0, 1) * 255.


def hbird_augment(image: Tensor, label: Tensor, out_size: Sequence[int],
                  rng: np.random.Generator) -> Tuple[Tensor, Tensor]:
    """open-hummingbird-eval's memory augmentation of one image.

    Args:
        image (Tensor): (3, H, W) float RGB in [0, 255], original size.
        label (Tensor): (H, W) int64 label map of the same size.
        out_size (Sequence[int]): (h, w) network input size.
        rng (np.random.Generator): Random generator (seeded per image and
            augmentation epoch by the caller).

    Returns:
        tuple[Tensor, Tensor]: (3, h, w) float image in [0, 255] and (h, w)
        int64 label.

    Raises:
        ValueError: If image and label sizes differ.
    """
    height, width = image.shape[-2:]
    if tuple(label.shape) != (height, width):
        raise ValueError(f'label {tuple(label.shape)} and image '
                         f'{(height, width)} differ in size')
    out_size = tuple(int(v) for v in out_size)
    image = hbird_jitter(image, rng)
    top, left, h, w = hbird_crop_params(height, width, rng)
    crop = image[:, top:top + h, left:left + w]
    crop = F.interpolate(
        crop[None], size=out_size, mode='bilinear', align_corners=False,
        antialias=True)[0].clamp_(0, 255)
    crop_label = label[top:top + h, left:left + w]
    crop_label = F.interpolate(
        crop_label[None, None].float(), size=out_size,
        mode='nearest')[0, 0].to(torch.int64)
    return crop, crop_label
