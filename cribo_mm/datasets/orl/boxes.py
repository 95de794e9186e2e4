# Copyright (c) cribo-mm contributors. All rights reserved.
"""Box geometry of ORL's RoI sampling (stage 3).

Pure NumPy functions, all boxes in OpenCV's ``(x, y, w, h)`` order (top-left
corner, width, height, in pixels), as selective search writes them and as
ORL's correspondence files store them.

* :func:`box_iou`: pairwise IoU (also the overlap test of the stage-2 box
  filter, :func:`cribo_mm.orl_mining.correspondence.filter_proposals`).
* :func:`jitter_box`: stage 3 intra-RoI box jitter.
* :func:`crop_resize`: crop a box and resize it (bilinear).
"""
import math
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

__all__ = ['box_iou', 'crop_resize', 'jitter_box']


def box_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(x, y, w, h)`` boxes (continuous coordinates).

    Args:
        boxes1 (np.ndarray): Shape (N, 4).
        boxes2 (np.ndarray): Shape (M, 4).

    Returns:
        np.ndarray: IoU matrix of shape (N, M), float64; 0 where both boxes
        have zero area.
    """
    a = np.asarray(boxes1, np.float64).reshape(-1, 4)
    b = np.asarray(boxes2, np.float64).reshape(-1, 4)
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.minimum(ax2[:, None], bx2[None]) - np.maximum(
        a[:, 0][:, None], b[:, 0][None])
    ih = np.minimum(ay2[:, None], by2[None]) - np.maximum(
        a[:, 1][:, None], b[:, 1][None])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.)


def jitter_box(box: Sequence[float],
               img_w: int,
               img_h: int,
               rng: Optional[np.random.Generator] = None,
               area_range: Tuple[float, float] = (0.5, 2.),
               ratio_range: Tuple[float, float] = (0.5, 2.),
               shift: float = 0.5,
               min_iou: float = 0.5,
               max_attempts: int = 200) -> List[float]:
    """ORL's intra-RoI jitter: a random box overlapping ``box``.

    Each attempt draws an area ``w h s`` with ``s ~ U(area_range)``, an
    aspect ratio ``r = w'/h'`` log-uniform in ``ratio_range`` and a centre
    shifted by ``U(-shift, shift) * (w, h)``; the candidate is accepted when
    it lies inside the image and ``IoU(candidate, box) > min_iou``. After
    ``max_attempts`` rejections ``box`` itself is returned.

    Args:
        box (Sequence[float]): ``(x, y, w, h)`` with ``w, h > 0``.
        img_w (int): Image width.
        img_h (int): Image height.
        rng (np.random.Generator, optional): Random generator. Defaults to a
            fresh unseeded one.
        area_range (tuple[float, float]): Area scale range. Defaults to
            (0.5, 2).
        ratio_range (tuple[float, float]): Aspect ratio range (log-uniform).
            Defaults to (0.5, 2).
        shift (float): Maximum centre shift as a fraction of the box's width
            and height. Defaults to 0.5.
        min_iou (float): The candidate's IoU with ``box`` must exceed this.
            Defaults to 0.5.
        max_attempts (int): Attempts before giving up. Defaults to 200.

    Returns:
        list[float]: The jittered ``(x, y, w, h)`` (or ``box``).
    """
    rng = np.random.default_rng() if rng is None else rng
    x, y, w, h = (float(v) for v in box)
    cx, cy = x + w / 2, y + h / 2
    log_r = (math.log(ratio_range[0]), math.log(ratio_range[1]))
    ref = np.array([[x, y, w, h]])
    for _ in range(max_attempts):
        area = w * h * rng.uniform(*area_range)
        ratio = math.exp(rng.uniform(*log_r))
        nw, nh = math.sqrt(area * ratio), math.sqrt(area / ratio)
        ncx = cx + rng.uniform(-shift, shift) * w
        ncy = cy + rng.uniform(-shift, shift) * h
        nx, ny = ncx - nw / 2, ncy - nh / 2
        if nx < 0 or ny < 0 or nx + nw > img_w or ny + nh > img_h:
            continue
        cand = [nx, ny, nw, nh]
        if box_iou(np.array([cand]), ref)[0, 0] > min_iou:
            return cand
    return [x, y, w, h]


def crop_resize(img: np.ndarray, box: Sequence[float],
                size: int) -> np.ndarray:
    """Crop ``box`` from ``img`` and resize it to ``size x size`` (bilinear).

    The box is rounded to whole pixels and clipped to the image; a box
    thinner than one pixel after clipping keeps one pixel.

    Args:
        img (np.ndarray): Image of shape (H, W, C) or (H, W).
        box (Sequence[float]): ``(x, y, w, h)``.
        size (int): Output side.

    Returns:
        np.ndarray: Shape (size, size, C) or (size, size), ``img.dtype``.
    """
    h_img, w_img = img.shape[:2]
    x, y, w, h = (float(v) for v in box)
    x1 = int(min(max(round(x), 0), w_img - 1))
    y1 = int(min(max(round(y), 0), h_img - 1))
    x2 = int(min(max(round(x + w), x1 + 1), w_img))
    y2 = int(min(max(round(y + h), y1 + 1), h_img))
    patch = np.ascontiguousarray(img[y1:y2, x1:x2])
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_LINEAR)
