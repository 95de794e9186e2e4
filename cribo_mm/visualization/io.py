# Copyright (c) cribo-mm contributors. All rights reserved.
"""Writing pictures."""
import os
import os.path as osp
from typing import Optional

import numpy as np

__all__ = ['save_png', 'load_png']


def save_png(image: np.ndarray, filename: str,
             colors: Optional[int] = None) -> str:
    """Write an RGB image as PNG (folders are created).

    Args:
        image (np.ndarray): uint8 RGB (H, W, 3).
        filename (str): Output path; '.png' is appended when missing.
        colors (int, optional): Reduce to an adaptive palette of this many
            colours (2..256, no dithering) for a much smaller file, e.g.
            for documentation. Defaults to None (full colour).

    Returns:
        str: The written path.
    """
    from PIL import Image
    if not filename.lower().endswith('.png'):
        filename += '.png'
    folder = osp.dirname(osp.abspath(filename))
    os.makedirs(folder, exist_ok=True)
    pil = Image.fromarray(np.ascontiguousarray(image[..., :3]), mode='RGB')
    if colors is not None:
        if not 2 <= int(colors) <= 256:
            raise ValueError(f'colors must be in [2, 256], got {colors}')
        pil = pil.quantize(
            colors=int(colors),
            method=Image.Quantize.MEDIANCUT,
            dither=Image.Dither.NONE)
    pil.save(filename, format='PNG', optimize=True)
    return filename


def load_png(filename: str) -> np.ndarray:
    """Read a picture back as uint8 RGB.

    Args:
        filename (str): Image path.

    Returns:
        np.ndarray: uint8 (H, W, 3).
    """
    from PIL import Image
    with Image.open(filename) as im:
        return np.asarray(im.convert('RGB'))
