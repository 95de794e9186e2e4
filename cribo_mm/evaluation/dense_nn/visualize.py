# Copyright (c) cribo-mm contributors. All rights reserved.
"""Side-by-side pictures (image | ground truth | prediction)."""
from typing import Optional, Sequence

import numpy as np

__all__ = [
    'default_palette', 'colorize_labels', 'side_by_side', 'COLUMN_TITLES'
]

#: Column labels of :func:`side_by_side`.
COLUMN_TITLES = ('image', 'ground truth', 'prediction (dense NN)')


def default_palette(num_classes: int, seed: int = 0) -> np.ndarray:
    """Deterministic random colours.

    Args:
        num_classes (int): Number of colours.
        seed (int): Seed. Defaults to 0.

    Returns:
        np.ndarray: uint8 array of shape (num_classes, 3).
    """
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(num_classes, 3), dtype=np.uint8)


def colorize_labels(labels: np.ndarray,
                    palette: Optional[Sequence[Sequence[int]]],
                    num_classes: int,
                    ignore_color: Sequence[int] = (0, 0, 0)) -> np.ndarray:
    """Colour a label map; values outside ``[0, num_classes)`` (such as the
    ignore index) get ``ignore_color``.

    Args:
        labels (np.ndarray): Integer map (H, W).
        palette (Sequence, optional): RGB colour per class; a random one is
            used when None or too short.
        num_classes (int): Number of classes.
        ignore_color (Sequence[int]): RGB of other values.
            Defaults to black.

    Returns:
        np.ndarray: uint8 image (H, W, 3).
    """
    if palette is None or len(palette) < num_classes:
        palette = default_palette(num_classes)
    lut = np.zeros((num_classes + 1, 3), dtype=np.uint8)
    lut[:num_classes] = np.asarray(palette[:num_classes], dtype=np.uint8)
    lut[num_classes] = np.asarray(ignore_color, dtype=np.uint8)
    labels = np.asarray(labels).astype(np.int64)
    valid = (labels >= 0) & (labels < num_classes)
    return lut[np.where(valid, labels, num_classes)]


def side_by_side(image: np.ndarray,
                 gt: np.ndarray,
                 pred: np.ndarray,
                 palette: Optional[Sequence[Sequence[int]]],
                 num_classes: int,
                 gap: int = 4,
                 titles: Optional[Sequence[str]] = COLUMN_TITLES,
                 header: int = 22) -> np.ndarray:
    """Image, coloured ground truth and coloured prediction in one row,
    each column labelled in a white strip above it.

    Args:
        image (np.ndarray): RGB uint8 image (H, W, 3).
        gt (np.ndarray): Ground-truth labels (H, W).
        pred (np.ndarray): Predicted labels (H, W).
        palette (Sequence, optional): RGB colour per class.
        num_classes (int): Number of classes.
        gap (int): White columns between panels. Defaults to 4.
        titles (Sequence[str], optional): The three column labels; None
            draws no strip. Defaults to :data:`COLUMN_TITLES`.
        header (int): Height of the label strip in pixels. Defaults to 22.

    Returns:
        np.ndarray: uint8 RGB picture (header + H, 3W + 2 gap, 3), header
        0 without titles.
    """
    height, width = gt.shape
    if image.shape[:2] != (height, width) or pred.shape != gt.shape:
        raise ValueError('image, gt and pred must share their height and '
                         f'width: {image.shape}, {gt.shape}, {pred.shape}')
    spacer = np.full((height, gap, 3), 255, dtype=np.uint8)
    panels = [
        np.asarray(image, dtype=np.uint8), spacer,
        colorize_labels(gt, palette, num_classes), spacer,
        colorize_labels(pred, palette, num_classes)
    ]
    row = np.concatenate(panels, axis=1)
    if titles is None:
        return row
    if len(titles) != 3:
        raise ValueError(f'titles must name the 3 columns, got {titles!r}')
    import cv2
    strip = np.full((header, row.shape[1], 3), 255, dtype=np.uint8)
    for k, title in enumerate(titles):
        scale = header / 40.
        (text_w, text_h), _ = cv2.getTextSize(
            str(title), cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        if text_w > width - 2:  # shrink to fit a narrow column
            scale *= (width - 2) / text_w
            (text_w, text_h), _ = cv2.getTextSize(
                str(title), cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        x = k * (width + gap) + max(0, (width - text_w) // 2)
        y = (header + text_h) // 2
        cv2.putText(strip, str(title), (x, y), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, (30, 30, 30), 1, cv2.LINE_AA)
    return np.concatenate([strip, row], axis=0)
