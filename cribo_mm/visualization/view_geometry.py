# Copyright (c) cribo-mm contributors. All rights reserved.
"""The two views of a sample drawn on its original image (crop boxes, flips
and the token centres the model computes from them)."""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from cribo_mm.datasets.transforms.geometry import patch_centres
from .annotate import BoxItem, TextItem
from .colors import VIEW_COLORS
from .drawing import as_rgb_uint8, hstack_panels, resize_to_height
from .figures import Figure, add_header, shift_items

__all__ = ['draw_points', 'view_token_centres', 'compose_view_geometry']

_LINE_STYLES = ('-', '--')


def draw_points(image: np.ndarray,
                xy: np.ndarray,
                color: Sequence[int],
                radius: int = 2,
                ring: Optional[int] = None) -> np.ndarray:
    """Draw filled dots on a copy of an RGB image.

    Args:
        image (np.ndarray): uint8 RGB (H, W, 3).
        xy (np.ndarray): Points of shape (N, 2) as (x, y) pixel centres
            (pixel ``i`` spans ``[i - 0.5, i + 0.5]``).
        color (Sequence[int]): RGB colour.
        radius (int): Dot radius in pixels. Defaults to 2.
        ring (int, optional): Also draw a ring of this radius (and a dark
            outline) around every point, to single it out. Defaults to None.

    Returns:
        np.ndarray: uint8 RGB (H, W, 3).
    """
    out = np.ascontiguousarray(image.copy())
    color = tuple(int(c) for c in color)
    for x, y in np.asarray(xy, dtype=np.float64).reshape(-1, 2):
        centre = (int(round(x)), int(round(y)))
        cv2.circle(out, centre, radius + 1, (20, 20, 20), -1, cv2.LINE_AA)
        cv2.circle(out, centre, radius, color, -1, cv2.LINE_AA)
        if ring is not None:
            cv2.circle(out, centre, ring + 1, (20, 20, 20), 1, cv2.LINE_AA)
            cv2.circle(out, centre, ring, color, 2, cv2.LINE_AA)
    return out


def view_token_centres(crop_bbox: np.ndarray, crop_flip: np.ndarray,
                       view_size: Tuple[int, int],
                       patch_size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Token centres of each view, in the original image and in the view.

    Args:
        crop_bbox (np.ndarray): (V, 4) boxes ``[x1, y1, x2, y2]``.
        crop_flip (np.ndarray): (V,) flip flags.
        view_size (tuple[int, int]): (H, W) of the views.
        patch_size (int): Patch size in view pixels.

    Returns:
        tuple[np.ndarray, np.ndarray]: (V, N, 2) (x, y) in original-image
        pixels (through :func:`patch_centres`, as the model computes them)
        and (N, 2) in view pixels, tokens in row-major order.
    """
    boxes = torch.as_tensor(np.asarray(crop_bbox, dtype=np.float32))
    flips = torch.as_tensor(np.asarray(crop_flip, dtype=bool))
    in_original = patch_centres(boxes, flips, tuple(view_size), patch_size)
    in_original = in_original.transpose(-1, -2).numpy()
    grid_h, grid_w = view_size[0] // patch_size, view_size[1] // patch_size
    rows, cols = np.meshgrid(
        np.arange(grid_h), np.arange(grid_w), indexing='ij')
    in_view = np.stack([cols.ravel(), rows.ravel()], axis=1)
    in_view = in_view * patch_size + patch_size / 2 - 0.5
    return in_original, in_view.astype(np.float64)


def _to_canvas(xy: np.ndarray, scale: float) -> np.ndarray:
    """Pixel-centre coordinates after resizing an image by ``scale``."""
    return (np.asarray(xy) + 0.5) * scale - 0.5


def compose_view_geometry(image: np.ndarray,
                          views: Sequence[np.ndarray],
                          crop_bbox: np.ndarray,
                          crop_flip: np.ndarray,
                          patch_size: int = 16,
                          height: int = 240,
                          title: Optional[str] = None) -> Figure:
    """Original image with both views' boxes and token centres, then the
    views with the same tokens.

    Left: the original image, each view's crop box (view 1 solid, view 2
    dashed, in the view's colour) and its token centres as computed by
    :func:`patch_centres`; the first token (top-left of the view) is
    ringed, so a flipped view shows it at the right edge of its box.
    Right: the two augmented views with their token grid, first token
    ringed. A caption per view gives its box and flip.

    Args:
        image (np.ndarray): Original uint8 RGB image (H, W, 3).
        views (Sequence[np.ndarray]): The views, uint8 RGB (h, w, 3) each.
        crop_bbox (np.ndarray): (V, 4) boxes in original pixels.
        crop_flip (np.ndarray): (V,) flip flags.
        patch_size (int): Patch size of the model. Defaults to 16.
        height (int): Height of every panel in pixels. Defaults to 240.
        title (str, optional): Header line.

    Returns:
        Figure: (pixels, annotation items), see :func:`render`.
    """
    crop_bbox = np.asarray(crop_bbox, dtype=np.float64).reshape(-1, 4)
    crop_flip = np.asarray(crop_flip, dtype=bool).reshape(-1)
    if len(views) != len(crop_bbox) or len(crop_flip) != len(crop_bbox):
        raise ValueError(f'{len(views)} views, {len(crop_bbox)} boxes and '
                         f'{len(crop_flip)} flip flags: they must match')
    if len(views) > len(VIEW_COLORS):
        raise ValueError(f'at most {len(VIEW_COLORS)} views can be drawn')
    view_size = tuple(np.asarray(views[0]).shape[:2])
    in_original, in_view = view_token_centres(crop_bbox, crop_flip,
                                              view_size, patch_size)

    original, scale = resize_to_height(as_rgb_uint8(image), height)
    items = []
    for v, (box, flip) in enumerate(zip(crop_bbox, crop_flip)):
        color = VIEW_COLORS[v]
        points = _to_canvas(in_original[v], scale)
        original = draw_points(original, points, color, radius=2)
        original = draw_points(original, points[:1], color, radius=2, ring=7)
        items.append(
            BoxItem(box * scale, color, style=_LINE_STYLES[v % 2], width=2))
        # label at the bottom-left corner: the top-left holds token rings
        items.append(
            TextItem(f'{v + 1}' + (' flip' if flip else ''),
                     (box[0] * scale + 2, box[3] * scale - 2),
                     size=8, color=(255, 255, 255), background=color,
                     va='bottom'))
    panels, panel_items = [original], [items]
    for v, view in enumerate(views):
        panel, vscale = resize_to_height(as_rgb_uint8(view), height)
        points = _to_canvas(in_view, vscale)
        panel = draw_points(panel, points, VIEW_COLORS[v], radius=2)
        panel = draw_points(panel, points[:1], VIEW_COLORS[v], radius=2,
                            ring=7)
        x1, y1, x2, y2 = crop_bbox[v]
        caption = (f'view {v + 1}: box [{x1:.0f}, {y1:.0f}, {x2:.0f}, '
                   f'{y2:.0f}]' + (', flipped' if crop_flip[v] else ''))
        panels.append(panel)
        panel_items.append([
            TextItem(caption, (3, panel.shape[0] - 3), size=8,
                     color=(255, 255, 255), background=VIEW_COLORS[v],
                     va='bottom')
        ])
    pixels, offsets = hstack_panels(panels, gap=8)
    all_items = []
    for its, (dx, dy) in zip(panel_items, offsets):
        all_items += shift_items(its, dx, dy)
    figure = (pixels, all_items)
    lines = [title] if title else []
    lines.append(f'dots: token centres ({patch_size} px patches, '
                 'cribo_mm.datasets.transforms.geometry.patch_centres); '
                 'ring: first token (top-left of the view)')
    return add_header(figure, lines)
