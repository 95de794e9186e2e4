# Copyright (c) cribo-mm contributors. All rights reserved.
"""Composed pictures of the analysis tools.

``compose_*`` functions are pure: they return the pixels of a figure and the
list of texts/boxes to draw on it (:func:`~.annotate.TextItem`,
:func:`~.annotate.BoxItem`, in the figure's pixel coordinates);
:func:`render` draws those with mmengine's ``Visualizer``. Splitting the two
lets pictures be tiled (:func:`tile`) before a single annotation pass.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .annotate import BoxItem, TextItem, annotate
from .colors import FAIL_COLOR, PASS_COLOR, VIEW_COLORS, object_palette
from .drawing import (add_frame, as_rgb_uint8, blank, highlight_mask,
                      hstack_panels, overlay_objects, pad_image,
                      resize_to_height, vstack_panels)
from .masks import mask_anchor, resize_labels, view_to_original

__all__ = [
    'Figure', 'shift_items', 'render', 'tile', 'compose_object_clusters',
    'compose_neighbour_pair', 'compose_placeholder', 'add_header',
    'object_mask_in_original', 'wrap_text', 'HIGHLIGHT_COLOR',
    'compose_roi_pairs'
]

#: (pixels, items) of a composed figure.
Figure = Tuple[np.ndarray, List[Dict]]

#: Tint of a highlighted object.
HIGHLIGHT_COLOR = (255, 215, 0)
_CAPTION_H = 20
_TITLE_H = 26
_MARGIN = 6
_WHITE = (255, 255, 255)
_DARK = (30, 30, 30)


def shift_items(items: Sequence[Dict], dx: float, dy: float) -> List[Dict]:
    """Translate annotation items.

    Args:
        items (Sequence[dict]): Text and box items.
        dx (float): Shift along x in pixels.
        dy (float): Shift along y in pixels.

    Returns:
        list[dict]: Shifted copies.
    """
    out = []
    for item in items:
        item = dict(item)
        if item['kind'] == 'box':
            x1, y1, x2, y2 = item['box']
            item['box'] = [x1 + dx, y1 + dy, x2 + dx, y2 + dy]
        else:
            item['xy'] = (item['xy'][0] + dx, item['xy'][1] + dy)
        out.append(item)
    return out


def render(figure: Figure) -> np.ndarray:
    """Draw a figure's annotations on its pixels.

    Args:
        figure (tuple[np.ndarray, list[dict]]): Pixels and items.

    Returns:
        np.ndarray: uint8 RGB picture (same size as the pixels).
    """
    pixels, items = figure
    return annotate(pixels, items) if items else pixels.copy()


def tile(figures: Sequence[Figure], cols: int, gap: int = 10,
         fill=_WHITE) -> Figure:
    """Arrange figures in a grid, row by row.

    Args:
        figures (Sequence[Figure]): Figures to place.
        cols (int): Figures per row.
        gap (int): Pixels between figures. Defaults to 10.
        fill (Sequence[int]): Background colour. Defaults to white.

    Returns:
        Figure: The grid.
    """
    if not figures:
        raise ValueError('no figure to tile')
    cols = max(1, int(cols))
    rows, row_items = [], []
    for start in range(0, len(figures), cols):
        chunk = figures[start:start + cols]
        row, offsets = hstack_panels([f[0] for f in chunk], gap, fill)
        items = []
        for (px, items_), (dx, dy) in zip(chunk, offsets):
            items += shift_items(items_, dx, dy)
        rows.append(row)
        row_items.append(items)
    grid, offsets = vstack_panels(rows, gap, fill)
    items = []
    for items_, (dx, dy) in zip(row_items, offsets):
        items += shift_items(items_, dx, dy)
    return grid, items


def add_header(figure: Figure, lines: Sequence[str], margin: int = _MARGIN,
               line_height: int = 18, size: float = 10) -> Figure:
    """Add a white margin and header lines above a figure.

    Args:
        figure (Figure): The figure.
        lines (Sequence[str]): Header lines (the first one is larger).
        margin (int): Margin around everything. Defaults to 6.
        line_height (int): Pixels per header line. Defaults to 18.
        size (float): Font size of the lines after the first. Defaults
            to 10.

    Returns:
        Figure: The framed figure.
    """
    pixels, items = figure
    wrapped = []
    for i, line in enumerate(lines):
        wrapped += [(i, part) for part in wrap_text(
            line, pixels.shape[1], size + 1.5 * (i == 0))]
    lines = wrapped
    head = _TITLE_H + line_height * max(0, len(lines) - 1) if lines else 0
    out = pad_image(pixels, margin + head, margin, margin, margin, _WHITE)
    new = []
    for i, (src, line) in enumerate(lines):
        y = margin + (0 if i == 0 else _TITLE_H + (i - 1) * line_height)
        new.append(
            TextItem(line, (margin, y + 3), size=size + 1.5 * (src == 0),
                     color=_DARK))
    return out, new + shift_items(items, margin, margin + head)


def wrap_text(text: str, width: int, size: float) -> List[str]:
    """Split a line so that each part fits ``width`` pixels.

    The width of a character is estimated for DejaVu Sans (0.6 em on
    average) at the Visualizer's 100 dpi.

    Args:
        text (str): The line.
        width (int): Available pixels.
        size (float): Font size in points.

    Returns:
        list[str]: One or more lines.
    """
    import textwrap
    char_px = 0.6 * size * 100. / 72.
    max_chars = max(10, int(width / char_px))
    return textwrap.wrap(text, max_chars) or ['']


def _caption(text: str, width: int, color=_DARK, size: float = 8.5,
             ha: str = 'center') -> Figure:
    x = width / 2 if ha == 'center' else 2
    return blank(_CAPTION_H, width), [
        TextItem(text, (x, _CAPTION_H / 2 + 1), size=size, color=color,
                 ha=ha, va='center')
    ]


def _stack_with_caption(panel: Figure, caption: Figure) -> Figure:
    pixels, offsets = vstack_panels([panel[0], caption[0]], gap=0)
    return pixels, panel[1] + shift_items(caption[1], *offsets[1])


def _label_items(label_map: np.ndarray, ids: Sequence[int],
                 size: float) -> List[Dict]:
    items = []
    for k in ids:
        mask = label_map == k
        if mask.sum() < 12:
            continue
        x, y = mask_anchor(mask)
        items.append(
            TextItem(str(int(k)), (x, y), size=size, color=_WHITE,
                     ha='center', va='center', background=_DARK,
                     background_alpha=0.55))
    return items


def compose_object_clusters(image: np.ndarray,
                            views: np.ndarray,
                            labels: np.ndarray,
                            valid: Sequence[bool],
                            crop_bbox: np.ndarray,
                            crop_flip: Sequence[bool],
                            panel_size: int = 224,
                            alpha: float = 0.5,
                            invalid_style: str = 'hatch',
                            show_ids: bool = True,
                            palette: Optional[np.ndarray] = None,
                            title: Optional[str] = None) -> Figure:
    """Original image with both crop boxes | view 1 | view 2, clusters
    coloured by id (same colour = same cluster in both views).

    Args:
        image (np.ndarray): Original image, uint8 RGB (H, W, 3).
        views (np.ndarray): The two views, uint8 RGB (2, h, w, 3).
        labels (np.ndarray): Cluster id per patch of each view, int
            (2, G_h, G_w) (-1: none).
        valid (Sequence[bool]): (K,) clusters present in both views.
        crop_bbox (np.ndarray): (2, 4) ``[x1, y1, x2, y2]`` of the views in
            original pixels.
        crop_flip (Sequence[bool]): (2,) flip flags.
        panel_size (int): Height of every panel. Defaults to 224.
        alpha (float): Opacity of the cluster colours. Defaults to 0.5.
        invalid_style (str): One-view clusters 'hatch' (greyed and hatched)
            or 'grey'. Defaults to 'hatch'.
        show_ids (bool): Write the id of every object on it. Defaults to
            True.
        palette (np.ndarray, optional): (K, 3) colours; defaults to
            :func:`object_palette`.
        title (str, optional): First header line; a second line counts the
            objects.

    Returns:
        Figure: Pixels and annotations.
    """
    valid = np.asarray(valid, dtype=bool)
    num_k = len(valid)
    palette = object_palette(num_k) if palette is None else palette
    labels = np.asarray(labels)
    crop_bbox = np.asarray(crop_bbox, dtype=np.float32).reshape(2, 4)
    size = int(panel_size)

    original, scale = resize_to_height(as_rgb_uint8(image), size)
    boxes = []
    for v in range(2):
        b = crop_bbox[v] * scale
        boxes.append(
            BoxItem([b[0] + 1, b[1] + 1, b[2] - 1, b[3] - 1], VIEW_COLORS[v],
                    style='-' if v == 0 else '--', width=2))
        boxes.append(
            TextItem(str(v + 1), (b[0] + 3, b[1] + 3), size=8,
                     color=_WHITE, background=VIEW_COLORS[v],
                     background_alpha=0.9))
    h, w = image.shape[:2]
    panels = [_stack_with_caption(
        (original, boxes),
        _caption(f'original {w}x{h}, crop boxes', original.shape[1]))]

    for v in range(2):
        view, _ = resize_to_height(as_rgb_uint8(views[v]), size,
                                   cv2.INTER_CUBIC)
        lab = resize_labels(labels[v], view.shape[:2])
        drawn = overlay_objects(view, lab, valid, palette, alpha=alpha,
                                invalid_style=invalid_style)
        drawn = add_frame(drawn, VIEW_COLORS[v], 2)
        items = []
        if show_ids:
            present = [k for k in np.flatnonzero(valid) if (lab == k).any()]
            items = shift_items(_label_items(lab, present, 7), 2, 2)
        flip = ', flipped' if bool(crop_flip[v]) else ''
        x1, y1, x2, y2 = (int(round(float(c))) for c in crop_bbox[v])
        caption = _caption(f'view {v + 1}{flip}: crop {x2 - x1}x{y2 - y1}',
                           drawn.shape[1])
        panels.append(_stack_with_caption((drawn, items), caption))

    # align the original panel's height (views have a 2 px frame)
    row, offsets = hstack_panels([p[0] for p in panels], gap=8)
    items = []
    for p, (dx, dy) in zip(panels, offsets):
        items += shift_items(p[1], dx, dy)
    num_obj = int(valid.sum())
    present = (labels[..., None] == np.arange(num_k)).any(axis=(1, 2))
    one_view = int((present.any(axis=0) & ~valid).sum())
    style = 'hatched' if invalid_style == 'hatch' else 'grey'
    lines = [title] if title else []
    lines.append(f'{num_obj} objects (same colour = same object in both '
                 f'views); {one_view} one-view clusters ({style}); K={num_k}')
    return add_header((row, items), lines, size=8.5)


def compose_neighbour_pair(query_image: np.ndarray,
                           query_mask: np.ndarray,
                           query_box: Sequence[float],
                           neighbour_image: Optional[np.ndarray],
                           neighbour_mask: Optional[np.ndarray],
                           neighbour_box: Optional[Sequence[float]],
                           passed: bool,
                           similarity: float,
                           query_caption: str,
                           neighbour_caption: str,
                           panel_size: int = 160,
                           placeholder_lines: Sequence[str] = ()) -> Figure:
    """Query object | its nearest bank object, framed green when the pair
    passes the cycle test and red when it fails.

    Args:
        query_image (np.ndarray): Query's original image, uint8 RGB.
        query_mask (np.ndarray): bool (H, W) object region in it.
        query_box (Sequence[float]): Crop box of the query's view.
        neighbour_image (np.ndarray, optional): Source image of the
            neighbour; None draws a placeholder (bank without images).
        neighbour_mask (np.ndarray, optional): bool region in it.
        neighbour_box (Sequence[float], optional): Crop box of the view the
            neighbour came from.
        passed (bool): Cycle-consistency test result.
        similarity (float): Cosine similarity of the pair.
        query_caption (str): Text under the query.
        neighbour_caption (str): Text under the neighbour.
        panel_size (int): Panel height. Defaults to 160.
        placeholder_lines (Sequence[str]): Text of the placeholder.

    Returns:
        Figure: Pixels and annotations.
    """
    size = int(panel_size)
    panels = []
    for img, mask, box, caption in (
            (query_image, query_mask, query_box, query_caption),
            (neighbour_image, neighbour_mask, neighbour_box,
             neighbour_caption)):
        if img is None:
            pixels, items = compose_placeholder(size, size, placeholder_lines)
        else:
            pixels = highlight_mask(img, mask, HIGHLIGHT_COLOR)
            pixels, scale = resize_to_height(pixels, size)
            items = []
            if box is not None:
                b = np.asarray(box, dtype=np.float32) * scale
                items.append(
                    BoxItem([b[0] + 1, b[1] + 1, b[2] - 1, b[3] - 1],
                            (235, 235, 235), style='--', width=1.2))
        panels.append(
            _stack_with_caption((pixels, items),
                                _caption(caption, pixels.shape[1], size=8)))
    row, offsets = hstack_panels([p[0] for p in panels], gap=6)
    items = []
    for p, (dx, dy) in zip(panels, offsets):
        items += shift_items(p[1], dx, dy)
    color = PASS_COLOR if passed else FAIL_COLOR
    mark = ('\u2713 cycle-consistent' if passed else
            '\u2717 fails cycle test')
    verdict = _caption(f'{mark}   cos {similarity:.3f}', row.shape[1],
                       color=color, size=9)
    fig = _stack_with_caption((row, items), verdict)
    return add_frame(fig[0], color, 3), shift_items(fig[1], 3, 3)


def compose_placeholder(height: int, width: int,
                        lines: Sequence[str]) -> Figure:
    """A grey panel with centred text lines.

    Args:
        height (int): Panel height.
        width (int): Panel width.
        lines (Sequence[str]): Text lines.

    Returns:
        Figure: Pixels and annotations.
    """
    pixels = blank(height, width, (215, 215, 215))
    step = 15
    top = height / 2 - step * (len(lines) - 1) / 2
    items = [
        TextItem(line, (width / 2, top + i * step), size=8, color=_DARK,
                 ha='center', va='center') for i, line in enumerate(lines)
    ]
    return pixels, items


def object_mask_in_original(label_grid: np.ndarray, cluster: int,
                            crop_bbox: Sequence[float], crop_flip: bool,
                            ori_shape: Tuple[int, int]) -> np.ndarray:
    """Region of one cluster of a view, in original-image pixels.

    Args:
        label_grid (np.ndarray): (G_h, G_w) cluster ids of the view.
        cluster (int): Cluster id.
        crop_bbox (Sequence[float]): The view's crop box.
        crop_flip (bool): The view's flip flag.
        ori_shape (tuple[int, int]): (H, W) of the original image.

    Returns:
        np.ndarray: bool (H, W).
    """
    return view_to_original(label_grid, crop_bbox, crop_flip,
                            ori_shape) == int(cluster)


def compose_roi_pairs(image: np.ndarray,
                      neighbour: np.ndarray,
                      pairs: Sequence[Sequence[float]],
                      kept: Sequence[Sequence[float]] = (),
                      height: int = 240,
                      caption: str = '') -> Figure:
    """An image and one of its kNN images with their ORL RoI pairs.

    Every pair ``[x, y, w, h, x', y', w', h']`` (original pixels, first box
    in ``image``, second in ``neighbour``) gets its own colour and number
    in both panels; the image's other kept boxes are drawn thin and grey.

    Args:
        image (np.ndarray): uint8 RGB (H, W, 3).
        neighbour (np.ndarray): uint8 RGB (H', W', 3).
        pairs (Sequence): The pairs.
        kept (Sequence): The image's filtered boxes ``[x, y, w, h]``.
            Defaults to none.
        height (int): Panel height. Defaults to 240.
        caption (str): Text under the panels. Defaults to none.

    Returns:
        Figure: Pixels and items.
    """
    left, s1 = resize_to_height(as_rgb_uint8(image), height)
    right, s2 = resize_to_height(as_rgb_uint8(neighbour), height)
    pixels, offsets = hstack_panels([left, right], gap=_MARGIN)
    (x1, y1), (x2, y2) = offsets

    def corners(box, scale, dx, dy):
        x, y, w, h = box
        return [x * scale + dx, y * scale + dy, (x + w) * scale + dx,
                (y + h) * scale + dy]

    items = [
        BoxItem(corners(b, s1, x1, y1), (170, 170, 170), width=0.8)
        for b in kept
    ]
    colors = object_palette(max(1, len(pairs)))
    for n, (pair, color) in enumerate(zip(pairs, colors)):
        color = tuple(int(c) for c in color)
        for box, scale, dx, dy in ((pair[:4], s1, x1, y1),
                                   (pair[4:], s2, x2, y2)):
            c = corners(box, scale, dx, dy)
            items.append(BoxItem(c, color, width=2.))
            items.append(
                TextItem(str(n + 1), (c[0] + 2, c[1] + 1), size=8,
                         color=_WHITE, background=color))
    figure = (pixels, items)
    if caption:
        figure = _stack_with_caption(figure,
                                     _caption(caption, pixels.shape[1]))
    return figure
