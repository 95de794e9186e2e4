# Copyright (c) cribo-mm contributors. All rights reserved.
"""Pixel-level drawing: cluster overlays, highlights, frames and panel
layout (pure NumPy / OpenCV functions on uint8 RGB images)."""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from .colors import INVALID_COLOR
from .masks import hatch_mask, label_boundaries

__all__ = [
    'as_rgb_uint8', 'resize_to_height', 'overlay_objects', 'highlight_mask',
    'add_frame', 'pad_image', 'hstack_panels', 'vstack_panels', 'blank'
]

Color = Sequence[int]


def as_rgb_uint8(image, bgr: bool = False) -> np.ndarray:
    """A displayable (H, W, 3) uint8 RGB copy of an image.

    Args:
        image (np.ndarray | Tensor): (H, W), (H, W, C) or a CHW tensor with
            C in {1, 3}.
        bgr (bool): The channels are in BGR order (OpenCV / mmcv).
            Defaults to False.

    Returns:
        np.ndarray: uint8 (H, W, 3) RGB.
    """
    if hasattr(image, 'detach'):
        image = image.detach().cpu().numpy()
        if image.ndim == 3 and image.shape[0] in (1, 3):
            image = image.transpose(1, 2, 0)
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    image = image[..., :3]
    if image.dtype != np.uint8:
        image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    if bgr:
        image = image[..., ::-1]
    return np.ascontiguousarray(image)


def resize_to_height(image: np.ndarray,
                     height: int,
                     interpolation: int = cv2.INTER_AREA
                     ) -> Tuple[np.ndarray, float]:
    """Resize keeping the aspect ratio.

    Args:
        image (np.ndarray): (H, W, ...) image.
        height (int): Output height.
        interpolation (int): OpenCV flag. Defaults to ``cv2.INTER_AREA``
            (bicubic is used instead when enlarging).

    Returns:
        tuple[np.ndarray, float]: Resized image and the scale factor.
    """
    h, w = image.shape[:2]
    scale = float(height) / h
    if (h, w) == (height, max(1, int(round(w * scale)))):
        return image.copy(), 1.0
    if scale > 1 and interpolation == cv2.INTER_AREA:
        interpolation = cv2.INTER_CUBIC
    out = cv2.resize(
        image, (max(1, int(round(w * scale))), int(height)),
        interpolation=interpolation)
    return out, scale


def _blend(base: np.ndarray, color, alpha) -> np.ndarray:
    return base * (1. - alpha) + np.asarray(color, np.float32) * alpha


def overlay_objects(image: np.ndarray,
                    label_map: np.ndarray,
                    valid: Sequence[bool],
                    palette: np.ndarray,
                    alpha: float = 0.5,
                    invalid_style: str = 'hatch',
                    boundary_color: Optional[Color] = (255, 255, 255),
                    hatch_spacing: int = 8) -> np.ndarray:
    """Colour every pixel by its cluster.

    Valid clusters (objects) are blended with their palette colour. Clusters
    present in one view only are greyed (``'grey'``) or greyed with dark
    diagonal hatching (``'hatch'``). Pixels with a negative label stay
    untouched.

    Args:
        image (np.ndarray): uint8 RGB (H, W, 3).
        label_map (np.ndarray): Integer cluster id per pixel (H, W).
        valid (Sequence[bool]): (K,) whether each cluster is an object.
        palette (np.ndarray): (K, 3) RGB colour per cluster id.
        alpha (float): Opacity of the colours. Defaults to 0.5.
        invalid_style (str): 'hatch' or 'grey'. Defaults to 'hatch'.
        boundary_color (Sequence[int], optional): Colour of the cluster
            borders; None draws none. Defaults to white.
        hatch_spacing (int): Period of the hatching. Defaults to 8.

    Returns:
        np.ndarray: uint8 RGB (H, W, 3).
    """
    if invalid_style not in ('hatch', 'grey'):
        raise ValueError(
            f"invalid_style must be 'hatch' or 'grey', got {invalid_style!r}")
    image = as_rgb_uint8(image)
    labels = np.asarray(label_map).astype(np.int64)
    if labels.shape != image.shape[:2]:
        raise ValueError(f'label map {labels.shape} does not match image '
                         f'{image.shape[:2]}')
    valid = np.asarray(valid, dtype=bool)
    palette = np.asarray(palette, dtype=np.float32)
    if len(palette) < len(valid):
        raise ValueError(f'{len(palette)} colours for {len(valid)} clusters')
    out = image.astype(np.float32)
    inside = (labels >= 0) & (labels < len(valid))
    safe = np.where(inside, labels, 0)
    is_valid = inside & valid[safe]
    is_invalid = inside & ~valid[safe]
    out[is_valid] = _blend(out[is_valid], palette[safe[is_valid]], alpha)
    if is_invalid.any():
        grey = out[is_invalid].mean(axis=1, keepdims=True)
        out[is_invalid] = _blend(
            np.repeat(grey, 3, axis=1), INVALID_COLOR, 0.5)
        if invalid_style == 'hatch':
            stripes = hatch_mask(labels.shape, hatch_spacing, 2) & is_invalid
            out[stripes] = _blend(out[stripes], (30, 30, 30), 0.8)
    if boundary_color is not None:
        edge = label_boundaries(np.where(inside, labels, -1))
        out[edge] = np.asarray(boundary_color, np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def highlight_mask(image: np.ndarray,
                   mask: np.ndarray,
                   color: Color,
                   alpha: float = 0.35,
                   dim: float = 0.55,
                   outline: int = 2) -> np.ndarray:
    """Make one region stand out: tint it, dim the rest, outline it.

    Args:
        image (np.ndarray): uint8 RGB (H, W, 3).
        mask (np.ndarray): bool (H, W) region.
        color (Sequence[int]): RGB tint and outline colour.
        alpha (float): Opacity of the tint. Defaults to 0.35.
        dim (float): Fraction of darkening (towards grey-black) outside the
            region. Defaults to 0.55.
        outline (int): Outline thickness in pixels; 0 draws none.
            Defaults to 2.

    Returns:
        np.ndarray: uint8 RGB (H, W, 3).
    """
    image = as_rgb_uint8(image)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != image.shape[:2]:
        raise ValueError(f'mask {mask.shape} does not match image '
                         f'{image.shape[:2]}')
    out = image.astype(np.float32)
    out[~mask] = _blend(out[~mask], (20, 20, 20), dim)
    out[mask] = _blend(out[mask], color, alpha)
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    if outline > 0 and mask.any():
        contours, _ = cv2.findContours(
            mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in color),
                         int(outline))
    return out


def add_frame(image: np.ndarray, color: Color, width: int = 4) -> np.ndarray:
    """Surround an image with a coloured border (the size grows).

    Args:
        image (np.ndarray): (H, W, 3) uint8.
        color (Sequence[int]): RGB border colour.
        width (int): Border width. Defaults to 4.

    Returns:
        np.ndarray: (H + 2 width, W + 2 width, 3) uint8.
    """
    return pad_image(image, width, width, width, width, color)


def pad_image(image: np.ndarray,
              top: int = 0,
              bottom: int = 0,
              left: int = 0,
              right: int = 0,
              fill: Color = (255, 255, 255)) -> np.ndarray:
    """Pad an RGB image with a constant colour.

    Args:
        image (np.ndarray): (H, W, 3) uint8.
        top (int): Rows added above. Defaults to 0.
        bottom (int): Rows added below. Defaults to 0.
        left (int): Columns added left. Defaults to 0.
        right (int): Columns added right. Defaults to 0.
        fill (Sequence[int]): RGB colour. Defaults to white.

    Returns:
        np.ndarray: The padded uint8 image.
    """
    h, w = image.shape[:2]
    out = np.empty((h + top + bottom, w + left + right, 3), dtype=np.uint8)
    out[:] = np.asarray(fill, dtype=np.uint8)
    out[top:top + h, left:left + w] = image[..., :3]
    return out


def blank(height: int, width: int,
          fill: Color = (255, 255, 255)) -> np.ndarray:
    """A constant RGB image.

    Args:
        height (int): Rows.
        width (int): Columns.
        fill (Sequence[int]): RGB colour. Defaults to white.

    Returns:
        np.ndarray: uint8 (height, width, 3).
    """
    out = np.empty((int(height), int(width), 3), dtype=np.uint8)
    out[:] = np.asarray(fill, dtype=np.uint8)
    return out


def _stack_panels(panels: Sequence[np.ndarray], axis: int, gap: int,
                  fill: Color) -> Tuple[np.ndarray, list]:
    """Place panels along ``axis`` (0: rows, 1: columns), aligned at the
    top-left; see :func:`hstack_panels` and :func:`vstack_panels`."""
    if not panels:
        raise ValueError('no panel to stack')
    extent = sum(p.shape[axis] for p in panels) + gap * (len(panels) - 1)
    across = max(p.shape[1 - axis] for p in panels)
    out = blank(*((extent, across) if axis == 0 else (across, extent)),
                fill)
    offsets, pos = [], 0
    for p in panels:
        h, w = p.shape[:2]
        y, x = (pos, 0) if axis == 0 else (0, pos)
        out[y:y + h, x:x + w] = p[..., :3]
        offsets.append((x, y))
        pos += p.shape[axis] + gap
    return out, offsets


def hstack_panels(panels: Sequence[np.ndarray],
                  gap: int = 8,
                  fill: Color = (255, 255, 255)
                  ) -> Tuple[np.ndarray, list]:
    """Place panels side by side, top-aligned.

    Args:
        panels (Sequence[np.ndarray]): uint8 RGB images.
        gap (int): Columns between panels. Defaults to 8.
        fill (Sequence[int]): Background colour. Defaults to white.

    Returns:
        tuple[np.ndarray, list[tuple[int, int]]]: The row image and the
        (x, y) offset of every panel in it.
    """
    return _stack_panels(panels, 1, gap, fill)


def vstack_panels(panels: Sequence[np.ndarray],
                  gap: int = 8,
                  fill: Color = (255, 255, 255)
                  ) -> Tuple[np.ndarray, list]:
    """Place panels one below the other, left-aligned.

    Args:
        panels (Sequence[np.ndarray]): uint8 RGB images.
        gap (int): Rows between panels. Defaults to 8.
        fill (Sequence[int]): Background colour. Defaults to white.

    Returns:
        tuple[np.ndarray, list[tuple[int, int]]]: The column image and the
        (x, y) offset of every panel in it.
    """
    return _stack_panels(panels, 0, gap, fill)
