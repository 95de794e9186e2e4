# Copyright (c) cribo-mm contributors. All rights reserved.
"""Label maps of clusters: patch grids, resizing, and mapping a view's
labels back into the original image (pure NumPy)."""
from typing import Sequence, Tuple

import cv2
import numpy as np

__all__ = [
    'hard_labels', 'labels_to_grid', 'resize_labels', 'view_to_original',
    'label_boundaries', 'hatch_mask', 'mask_anchor'
]


def _numpy(x) -> np.ndarray:
    if hasattr(x, 'detach'):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def hard_labels(assignment) -> np.ndarray:
    """Cluster id of every patch from a (soft or hard) assignment.

    Ties (a hard assignment may keep several maxima) go to the lowest id.

    Args:
        assignment (Tensor | np.ndarray): (..., n, K) assignment weights.

    Returns:
        np.ndarray: int64 (..., n) cluster ids.
    """
    return _numpy(assignment).argmax(axis=-1).astype(np.int64)


def labels_to_grid(labels, grid_shape: Tuple[int, int]) -> np.ndarray:
    """Row-major patch labels as a (G_h, G_w) grid.

    Args:
        labels (Tensor | np.ndarray): (n,) with n = G_h * G_w.
        grid_shape (tuple[int, int]): (G_h, G_w).

    Returns:
        np.ndarray: int64 (G_h, G_w).
    """
    labels = _numpy(labels).astype(np.int64)
    g_h, g_w = (int(s) for s in grid_shape)
    if labels.size != g_h * g_w:
        raise ValueError(f'{labels.size} labels do not fill a {g_h}x{g_w} '
                         'patch grid')
    return labels.reshape(g_h, g_w)


def resize_labels(label_map: np.ndarray,
                  size: Tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map with pixel-centre alignment.

    Args:
        label_map (np.ndarray): Integer map (h, w).
        size (tuple[int, int]): Output (H, W).

    Returns:
        np.ndarray: int64 (H, W); output pixel (r, c) takes input pixel
        (floor((r + 0.5) * h / H), floor((c + 0.5) * w / W)).
    """
    label_map = np.asarray(label_map)
    h, w = label_map.shape[:2]
    out_h, out_w = (int(s) for s in size)
    rows = np.minimum(((np.arange(out_h) + 0.5) * h / out_h).astype(np.int64),
                      h - 1)
    cols = np.minimum(((np.arange(out_w) + 0.5) * w / out_w).astype(np.int64),
                      w - 1)
    return label_map[rows[:, None], cols[None, :]].astype(np.int64)


def view_to_original(view_map: np.ndarray,
                     crop_bbox: Sequence[float],
                     crop_flip: bool,
                     ori_shape: Tuple[int, int],
                     fill: int = -1) -> np.ndarray:
    """Place a view's label map (any resolution, e.g. its patch grid) back
    into the original image.

    The view covers the crop box ``[x1, y1, x2, y2]`` (original pixels,
    pixel boundaries) resized to the view and flipped horizontally when
    ``crop_flip``; the view map covers the whole view. Each original pixel
    inside the box takes the label of the map cell containing its centre;
    pixels outside the box get ``fill``.

    Args:
        view_map (np.ndarray): Integer map (h, w) over the view.
        crop_bbox (Sequence[float]): ``[x1, y1, x2, y2]`` of the view.
        crop_flip (bool): Whether the view was flipped horizontally.
        ori_shape (tuple[int, int]): (H, W) of the original image.
        fill (int): Label outside the crop box. Defaults to -1.

    Returns:
        np.ndarray: int64 (H, W) label map in original-image pixels.
    """
    view_map = np.asarray(view_map)
    h, w = view_map.shape[:2]
    height, width = (int(s) for s in ori_shape[:2])
    x1, y1, x2, y2 = (float(v) for v in crop_bbox)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f'empty crop box {list(crop_bbox)}')
    xs = (np.arange(width) + 0.5 - x1) * w / (x2 - x1)
    ys = (np.arange(height) + 0.5 - y1) * h / (y2 - y1)
    in_x = (xs >= 0) & (xs < w)
    in_y = (ys >= 0) & (ys < h)
    cols = np.clip(np.floor(xs).astype(np.int64), 0, w - 1)
    rows = np.clip(np.floor(ys).astype(np.int64), 0, h - 1)
    if crop_flip:
        cols = w - 1 - cols
    out = view_map[rows[:, None], cols[None, :]].astype(np.int64)
    out[~(in_y[:, None] & in_x[None, :])] = fill
    return out


def label_boundaries(label_map: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another label.

    Args:
        label_map (np.ndarray): Integer map (H, W).

    Returns:
        np.ndarray: bool (H, W).
    """
    label_map = np.asarray(label_map)
    edge = np.zeros(label_map.shape[:2], dtype=bool)
    edge[:, :-1] |= label_map[:, :-1] != label_map[:, 1:]
    edge[:-1, :] |= label_map[:-1, :] != label_map[1:, :]
    return edge


def hatch_mask(shape: Tuple[int, int],
               spacing: int = 8,
               width: int = 2) -> np.ndarray:
    """Diagonal stripes (lower left to upper right).

    Args:
        shape (tuple[int, int]): (H, W).
        spacing (int): Period of the stripes in pixels. Defaults to 8.
        width (int): Stripe width in pixels. Defaults to 2.

    Returns:
        np.ndarray: bool (H, W), True on a stripe.
    """
    if spacing < 1 or width < 1:
        raise ValueError('spacing and width must be >= 1')
    rows, cols = np.mgrid[0:int(shape[0]), 0:int(shape[1])]
    return ((rows + cols) % int(spacing)) < int(width)


def mask_anchor(mask: np.ndarray) -> Tuple[float, float]:
    """A point well inside a region, to put its label on.

    The pixel farthest from the region's border (largest distance
    transform; the first one in row-major order on ties), so the point lies
    inside even for a ring-shaped or split region.

    Args:
        mask (np.ndarray): bool (H, W), not empty.

    Returns:
        tuple[float, float]: (x, y) pixel centre.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError('empty mask has no anchor')
    padded = np.pad(mask, 1).astype(np.uint8)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 3)[1:-1, 1:-1]
    r, c = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return float(c) + 0.5, float(r) + 0.5
