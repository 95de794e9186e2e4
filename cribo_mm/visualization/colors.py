# Copyright (c) cribo-mm contributors. All rights reserved.
"""Colours shared by the analysis pictures."""
import colorsys
from typing import Tuple

import numpy as np

__all__ = [
    'object_palette', 'VIEW_COLORS', 'PASS_COLOR', 'FAIL_COLOR',
    'INVALID_COLOR', 'rgb_to_float'
]

#: Crop-box colours of view 1 and view 2 (RGB).
VIEW_COLORS: Tuple[Tuple[int, int, int], ...] = ((255, 150, 0), (0, 190, 255))
#: Mark of a cycle-consistent pair (RGB).
PASS_COLOR: Tuple[int, int, int] = (30, 170, 60)
#: Mark of a pair that fails the cycle test (RGB).
FAIL_COLOR: Tuple[int, int, int] = (215, 40, 40)
#: Tint of clusters present in one view only (RGB).
INVALID_COLOR: Tuple[int, int, int] = (128, 128, 128)

_GOLDEN = 0.6180339887498949


def object_palette(num_colors: int, offset: float = 0.0) -> np.ndarray:
    """Well separated, deterministic colours for object ids.

    Hues step by the golden ratio, so any run of consecutive ids gets
    distinct hues; saturation and value alternate to separate ids whose
    hues come close again.

    Args:
        num_colors (int): Number of colours (e.g. the number of clusters K).
        offset (float): Hue of id 0 in [0, 1). Defaults to 0.

    Returns:
        np.ndarray: uint8 array (num_colors, 3), RGB.
    """
    if num_colors < 0:
        raise ValueError(f'num_colors must be >= 0, got {num_colors}')
    colors = np.zeros((num_colors, 3), dtype=np.uint8)
    for k in range(num_colors):
        hue = (offset + k * _GOLDEN) % 1.0
        sat = (0.85, 0.6, 0.95)[k % 3]
        val = (0.95, 0.85, 0.7)[(k // 3) % 3]
        rgb = colorsys.hsv_to_rgb(hue, sat, val)
        colors[k] = np.round(np.asarray(rgb) * 255).astype(np.uint8)
    return colors


def rgb_to_float(color) -> Tuple[float, float, float]:
    """An RGB colour in [0, 255] as the (r, g, b) floats matplotlib takes.

    Args:
        color (Sequence[int]): RGB in [0, 255].

    Returns:
        tuple[float, float, float]: RGB in [0, 1].
    """
    return tuple(float(c) / 255. for c in color[:3])
