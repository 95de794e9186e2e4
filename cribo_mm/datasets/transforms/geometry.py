# Copyright (c) cribo-mm contributors. All rights reserved.
"""Pure functions for the crop geometry of CrIBo views.

Two conventions are used throughout:

* A **crop box** ``[x1, y1, x2, y2]`` is given in pixel *boundaries* of the
  original image: the crop covers the columns ``x1 .. x2 - 1`` and the rows
  ``y1 .. y2 - 1``, so ``x2 - x1`` is the crop width. torchvision's
  ``(i, j, h, w)`` becomes ``[j, i, j + w, i + h]``.
* A **position** is a pixel index of the original image (the centre of pixel
  ``(r, c)`` sits at ``x = c, y = r``), as in the reference implementation's
  per-pixel coordinate maps.

Nothing here depends on mmcv or mmengine, so the model can import
:func:`patch_centres` and run it on any device.
"""
import math
from typing import Callable, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

__all__ = ['sample_resized_crop', 'crop_box_from_ijhw', 'patch_centres']

Size = Union[int, Sequence[int]]


def _pair(size: Size) -> Tuple[int, int]:
    """Return ``(height, width)`` from an int or a 2-sequence."""
    if isinstance(size, int):
        return size, size
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ValueError(f'size must be an int or (h, w), got {size}')
    return size


def sample_resized_crop(
    height: int,
    width: int,
    scale: Tuple[float, float] = (0.25, 1.0),
    ratio: Tuple[float, float] = (3. / 4., 4. / 3.),
    uniform: Optional[Callable[[float, float], float]] = None,
    randint: Optional[Callable[[int, int], int]] = None,
    max_attempts: int = 10,
) -> Tuple[int, int, int, int]:
    """Draw a random resized crop the way torchvision does.

    Up to ``max_attempts`` times, an area fraction is drawn uniformly from
    ``scale`` and an aspect ratio log-uniformly from ``ratio``; the first box
    that fits inside the image is placed uniformly at random. When none fits,
    the largest centred box whose aspect ratio lies in ``ratio`` is returned.

    Args:
        height (int): Image height in pixels.
        width (int): Image width in pixels.
        scale (tuple[float, float]): Range of the crop area as a fraction of
            the image area. Defaults to ``(0.25, 1.0)``.
        ratio (tuple[float, float]): Range of the crop aspect ratio
            (width / height). Defaults to ``(3/4, 4/3)``.
        uniform (callable, optional): ``uniform(low, high) -> float``.
            Defaults to :func:`numpy.random.uniform`.
        randint (callable, optional): ``randint(low, high) -> int`` with
            ``high`` exclusive. Defaults to :func:`numpy.random.randint`.
        max_attempts (int): Number of tries before the centred fallback.
            Defaults to 10.

    Returns:
        tuple[int, int, int, int]: ``(top, left, crop_height, crop_width)``.
    """
    if uniform is None or randint is None:
        import numpy as np
        uniform = uniform or np.random.uniform
        randint = randint or (lambda lo, hi: int(np.random.randint(lo, hi)))
    if height < 1 or width < 1:
        raise ValueError(f'empty image of size {height}x{width}')
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(max_attempts):
        target_area = area * uniform(scale[0], scale[1])
        aspect = math.exp(uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = randint(0, height - h + 1)
            left = randint(0, width - w + 1)
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w = width
        h = max(1, min(height, int(round(w / min(ratio)))))
    elif in_ratio > max(ratio):
        h = height
        w = max(1, min(width, int(round(h * max(ratio)))))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def crop_box_from_ijhw(top: float, left: float, height: float,
                       width: float) -> Tuple[float, float, float, float]:
    """Convert torchvision's ``(i, j, h, w)`` into ``[x1, y1, x2, y2]``.

    Args:
        top (float): First row of the crop (``i``).
        left (float): First column of the crop (``j``).
        height (float): Crop height (``h``).
        width (float): Crop width (``w``).

    Returns:
        tuple[float, float, float, float]: ``(x1, y1, x2, y2)`` in pixel
        boundaries of the original image.
    """
    return (left, top, left + width, top + height)


def patch_centres(crop_bbox: Tensor,
                  crop_flip: Optional[Tensor] = None,
                  out_size: Size = (224, 224),
                  patch_size: Size = 16) -> Tensor:
    """Original-image position of the centre of every patch of a view.

    A view is the crop ``[x1, y1, x2, y2]`` of the original image resized to
    ``out_size`` (pixel-centre aligned, i.e. ``align_corners=False``) and
    optionally flipped horizontally. The patch grid covers the first
    ``G_h * p_h`` rows and ``G_w * p_w`` columns of the view, with
    ``G = out // p`` (as a strided patch embedding does). For patch
    ``(r, c)`` the closed form is

    .. math::

        x = x_1 + (p_w c + p_w / 2) \\frac{x_2 - x_1}{W_{out}} - 0.5, \\quad
        y = y_1 + (p_h r + p_h / 2) \\frac{y_2 - y_1}{H_{out}} - 0.5,

    where a flipped view uses ``W_out - (p_w c + p_w / 2)`` in place of
    ``p_w c + p_w / 2`` (``c -> G_w - 1 - c`` when ``p_w`` divides
    ``W_out``). This equals the patch mean of the reference implementation's
    warped per-pixel coordinate map up to sub-pixel resampling effects at
    the crop border (<= 0.01 px, see the fixture README).

    Args:
        crop_bbox (Tensor): Crop boxes of shape ``(..., 4)`` as
            ``[x1, y1, x2, y2]`` in original-image pixels (see module
            docstring). Any leading shape (e.g. ``(B, num_views)``).
        crop_flip (Tensor, optional): Horizontal-flip flags of shape ``(...)``
            (the leading shape of ``crop_bbox``), bool or 0/1. ``None`` means
            no view is flipped.
        out_size (int | tuple[int, int]): View size ``(H_out, W_out)``.
            Defaults to ``(224, 224)``.
        patch_size (int | tuple[int, int]): Patch size ``(p_h, p_w)``.
            Defaults to 16.

    Returns:
        Tensor: Positions of shape ``(..., 2, G_h * G_w)``; row 0 is x
        (column), row 1 is y (row); patches in row-major order. Floating
        dtype of ``crop_bbox`` (float32 for integer boxes), on its device.
    """
    out_h, out_w = _pair(out_size)
    p_h, p_w = _pair(patch_size)
    g_h, g_w = out_h // p_h, out_w // p_w
    if g_h < 1 or g_w < 1:
        raise ValueError(f'out_size {out_size} is smaller than one patch '
                         f'{patch_size}')
    box = torch.as_tensor(crop_bbox)
    if box.shape[-1] != 4:
        raise ValueError('crop_bbox must have shape (..., 4), got '
                         f'{tuple(box.shape)}')
    if not box.is_floating_point():
        box = box.float()
    dtype, device = box.dtype, box.device
    lead = box.shape[:-1]

    # centres of the patches in continuous view coordinates (pixel edges)
    u = torch.arange(g_w, dtype=dtype, device=device) * p_w + p_w / 2.
    v = torch.arange(g_h, dtype=dtype, device=device) * p_h + p_h / 2.
    u = u.expand(*lead, g_w)
    if crop_flip is not None:
        flip = torch.as_tensor(crop_flip, device=device).to(torch.bool)
        if flip.shape != lead:
            flip = flip.expand(lead)
        u = torch.where(flip.unsqueeze(-1), out_w - u, u)

    x1, y1, x2, y2 = box.unbind(-1)
    xs = x1.unsqueeze(-1) + u * ((x2 - x1) / out_w).unsqueeze(-1) - 0.5
    ys = y1.unsqueeze(-1) + v * ((y2 - y1) / out_h).unsqueeze(-1) - 0.5
    # row-major grid: x varies along columns, y along rows
    xs = xs.unsqueeze(-2).expand(*lead, g_h, g_w)
    ys = ys.unsqueeze(-1).expand(*lead, g_h, g_w)
    return torch.stack([xs, ys], dim=-3).reshape(*lead, 2, g_h * g_w)
