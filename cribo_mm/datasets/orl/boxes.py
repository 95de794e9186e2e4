# Copyright (c) cribo-mm contributors. All rights reserved.
"""Box geometry of ORL's correspondence discovery and RoI sampling.

Pure NumPy functions, all boxes in OpenCV's ``(x, y, w, h)`` order (top-left
corner, width, height, in pixels), as selective search writes them and as
ORL's correspondence files store them.

* :func:`filter_proposals`: stage 2c box filter (min side 96, max aspect 3,
  greedy overlap <= 0.5 in proposal order, at most 100; the first proposal
  when none survives).
* :func:`select_top_pairs`: stage 2c pair selection (top
  ``max(1, floor(0.1 n))`` entries of the flattened similarity matrix, with
  ``n`` the query image's box count).
* :func:`jitter_box`: stage 3 intra-RoI box jitter.
* :func:`crop_resize`: crop a box and resize it (bilinear).
"""
import math
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

__all__ = [
    'box_iou', 'crop_resize', 'filter_proposals', 'jitter_box',
    'select_top_pairs'
]


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


def filter_proposals(boxes: Sequence[Sequence[float]],
                     min_size: float = 96,
                     max_aspect_ratio: float = 3.,
                     max_iou: float = 0.5,
                     max_num: int = 100) -> List[List[float]]:
    """ORL's proposal filter, greedy in proposal order.

    A box is kept when ``w >= min_size``, ``h >= min_size``,
    ``w / h <= max_aspect_ratio``, ``h / w <= max_aspect_ratio`` and its IoU
    with every box kept so far is ``<= max_iou``; scanning stops once
    ``max_num`` boxes are kept. When no box survives, the first proposal is
    returned alone (so every image keeps at least one box).

    Args:
        boxes (Sequence): Proposals ``(x, y, w, h)``, shape (N, 4), N >= 1.
        min_size (float): Minimum width and height. Defaults to 96.
        max_aspect_ratio (float): Maximum of ``w/h`` and ``h/w``.
            Defaults to 3.
        max_iou (float): Maximum IoU with an already kept box. Defaults
            to 0.5.
        max_num (int): Maximum number of kept boxes. Defaults to 100.

    Returns:
        list[list[float]]: The kept boxes, in proposal order, as given.

    Raises:
        ValueError: ``boxes`` is empty or not of shape (N, 4).
    """
    arr = np.asarray(boxes, np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4 or len(arr) == 0:
        raise ValueError('filter_proposals needs a non-empty (N, 4) array of '
                         f'(x, y, w, h) boxes, got shape {arr.shape}')
    kept: List[int] = []
    for i, (_, _, w, h) in enumerate(arr):
        if len(kept) >= max_num:
            break
        if w < min_size or h < min_size:
            continue
        if w / h > max_aspect_ratio or h / w > max_aspect_ratio:
            continue
        if kept and box_iou(arr[i:i + 1], arr[kept]).max() > max_iou:
            continue
        kept.append(i)
    if not kept:
        kept = [0]
    return [list(boxes[i]) for i in kept]


def select_top_pairs(similarity: np.ndarray,
                     ratio: float = 0.1) -> List[Tuple[int, int]]:
    """Top entries of a box-to-box similarity matrix.

    Keeps the ``max(1, floor(ratio * N))`` largest entries of the flattened
    (N, M) matrix, ``N`` being the query image's box count; a box may appear
    in several pairs. Ties keep the lower flat index first.

    Args:
        similarity (np.ndarray): Shape (N, M), query boxes by neighbour
            boxes.
        ratio (float): Fraction of the query's box count. Defaults to 0.1.

    Returns:
        list[tuple[int, int]]: ``(query_box, neighbour_box)`` indices,
        by decreasing similarity.
    """
    sim = np.asarray(similarity, np.float64)
    if sim.ndim != 2 or sim.size == 0:
        raise ValueError('select_top_pairs needs a non-empty (N, M) matrix, '
                         f'got shape {sim.shape}')
    num = min(max(1, int(math.floor(ratio * sim.shape[0]))), sim.size)
    flat = sim.reshape(-1)
    order = np.argsort(-flat, kind='stable')[:num]
    return [(int(k // sim.shape[1]), int(k % sim.shape[1])) for k in order]


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
