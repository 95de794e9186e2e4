# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL stage 2b: selective-search region proposals (OpenCV contrib).

:func:`selective_search` runs ``cv2.ximgproc.segmentation`` selective
search on a full-resolution BGR image, as ORL does (fast mode, default
parameters, every box kept in OpenCV's order).

OpenCV shuffles the proposal ranking with the C library's ``rand()``; the
authors' code leaves it unseeded, so their proposal order (and with it the
greedy box filter of stage 2c) changes from run to run. Here ``rand`` is
reseeded before every image, which makes a proposals file independent of
sharding, worker count and resumption. ``seed=None`` keeps the authors'
unseeded behaviour.
"""
import ctypes
import ctypes.util
from typing import List, Optional

import numpy as np

__all__ = ['require_selective_search', 'selective_search']

_LIBC = None


def require_selective_search():
    """The OpenCV module with selective search, or a clear error.

    Returns:
        module: ``cv2``.

    Raises:
        ImportError: OpenCV lacks the contrib modules.
    """
    import cv2
    segmentation = getattr(getattr(cv2, 'ximgproc', None), 'segmentation',
                           None)
    if not hasattr(segmentation, 'createSelectiveSearchSegmentation'):
        raise ImportError(
            f'cv2 {cv2.__version__} has no contrib modules (cv2.ximgproc), '
            'which selective search needs: replace opencv-python by '
            'opencv-contrib-python-headless of the same version '
            '(tools/setup_env.sh does this)')
    return cv2


def _srand(seed: int) -> None:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(ctypes.util.find_library('c'))
    _LIBC.srand(ctypes.c_uint(seed))


def selective_search(img: np.ndarray,
                     mode: str = 'fast',
                     seed: Optional[int] = 0) -> List[List[int]]:
    """Selective-search proposals of one image.

    Args:
        img (np.ndarray): uint8 BGR image, shape (H, W, 3), full resolution.
        mode (str): 'fast' (ORL) or 'quality'. Defaults to 'fast'.
        seed (int, optional): Seed of the C ``rand()`` that OpenCV uses to
            shuffle the ranking, set before the search. None leaves it as
            it is (the authors' behaviour: the order changes between runs).
            Defaults to 0.

    Returns:
        list[list[int]]: Boxes ``[x, y, w, h]`` in OpenCV's order.
    """
    cv2 = require_selective_search()
    if mode not in ('fast', 'quality'):
        raise ValueError(f"mode must be 'fast' or 'quality', got {mode!r}")
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError('selective search needs a uint8 (H, W, 3) BGR '
                         f'image, got {img.dtype} {img.shape}')
    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(img)
    if mode == 'fast':
        search.switchToSelectiveSearchFast()
    else:
        search.switchToSelectiveSearchQuality()
    if seed is not None:
        _srand(seed)
    boxes = search.process()
    return np.asarray(boxes, np.int64).reshape(-1, 4).tolist()
