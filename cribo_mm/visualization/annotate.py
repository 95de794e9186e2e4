# Copyright (c) cribo-mm contributors. All rights reserved.
"""Text, boxes and on-screen display through mmengine's ``Visualizer``.

Pixels (overlays, layout) are composed with :mod:`.drawing`; captions, crop
boxes and marks are then drawn on the composed canvas with mmengine's
``Visualizer`` (matplotlib's Agg canvas, so it works without a display and
the output has exactly the canvas size).
"""
import os
import sys
import warnings
from typing import Dict, Optional, Sequence

import numpy as np

__all__ = [
    'TextItem', 'BoxItem', 'annotate', 'display_available', 'show_image',
    'get_visualizer'
]

_VIS_NAME = 'cribo_mm_analysis'
#: Font bundled with matplotlib, so pictures do not depend on system fonts.
FONT_FAMILY = 'DejaVu Sans'


def get_visualizer():
    """The shared mmengine ``Visualizer`` of the analysis tools.

    Returns:
        mmengine.visualization.Visualizer: Created on first use.
    """
    from mmengine.visualization import Visualizer
    return Visualizer.get_instance(_VIS_NAME)


def TextItem(text: str,
             xy: Sequence[float],
             size: float = 10,
             color: Sequence[int] = (0, 0, 0),
             ha: str = 'left',
             va: str = 'top',
             background: Optional[Sequence[int]] = None,
             background_alpha: float = 0.8) -> Dict:
    """Describe one text for :func:`annotate`.

    Args:
        text (str): The text.
        xy (Sequence[float]): Anchor (x, y) in canvas pixels.
        size (float): Font size in points. Defaults to 10.
        color (Sequence[int]): RGB text colour. Defaults to black.
        ha (str): Horizontal alignment ('left', 'center', 'right').
        va (str): Vertical alignment ('top', 'center', 'bottom').
        background (Sequence[int], optional): RGB box behind the text.
        background_alpha (float): Opacity of that box. Defaults to 0.8.

    Returns:
        dict: The text item.
    """
    return dict(
        kind='text', text=str(text), xy=(float(xy[0]), float(xy[1])),
        size=float(size), color=tuple(int(c) for c in color), ha=ha, va=va,
        background=None if background is None else tuple(
            int(c) for c in background),
        background_alpha=float(background_alpha))


def BoxItem(box: Sequence[float],
            color: Sequence[int],
            style: str = '-',
            width: float = 2.) -> Dict:
    """Describe one rectangle for :func:`annotate`.

    Args:
        box (Sequence[float]): ``[x1, y1, x2, y2]`` in canvas pixels.
        color (Sequence[int]): RGB edge colour.
        style (str): Matplotlib line style ('-', '--', ':'). Defaults to '-'.
        width (float): Line width in points. Defaults to 2.

    Returns:
        dict: The box item.
    """
    return dict(
        kind='box', box=[float(v) for v in box],
        color=tuple(int(c) for c in color), style=style, width=float(width))


def annotate(canvas: np.ndarray, items: Sequence[Dict]) -> np.ndarray:
    """Draw texts and boxes on a copy of an RGB canvas.

    Args:
        canvas (np.ndarray): uint8 RGB (H, W, 3).
        items (Sequence[dict]): :func:`TextItem` and :func:`BoxItem` dicts,
            drawn in order.

    Returns:
        np.ndarray: uint8 RGB (H, W, 3), the same size as ``canvas``.
    """
    vis = get_visualizer()
    vis.set_image(np.ascontiguousarray(canvas[..., :3]))
    with warnings.catch_warnings():
        # texts or boxes touching the border are intended
        warnings.filterwarnings('ignore', message='.*out of bounds.*')
        for item in items:
            if item['kind'] == 'box':
                vis.draw_bboxes(
                    np.asarray([item['box']], dtype=np.float32),
                    edge_colors=[item['color']],
                    line_styles=[item['style']],
                    line_widths=[item['width']],
                    alpha=1.0)
            elif item['kind'] == 'text':
                bbox = None
                if item['background'] is not None:
                    bbox = dict(
                        facecolor=tuple(c / 255. for c in item['background']),
                        alpha=item['background_alpha'],
                        pad=1.5,
                        edgecolor='none')
                vis.draw_texts(
                    item['text'],
                    np.asarray([item['xy']], dtype=np.float32),
                    font_sizes=item['size'],
                    colors=item['color'],
                    vertical_alignments=item['va'],
                    horizontal_alignments=item['ha'],
                    font_families=FONT_FAMILY,
                    bboxes=bbox)
            else:
                raise ValueError(f'unknown item kind {item.get("kind")!r}')
    out = vis.get_image()
    if out.shape[:2] != canvas.shape[:2]:  # guard against rounding
        import cv2
        out = cv2.resize(out, (canvas.shape[1], canvas.shape[0]),
                         interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(out[..., :3])


def display_available() -> bool:
    """Whether a window can be opened (``--show``).

    Returns:
        bool: True on macOS/Windows or when ``$DISPLAY`` or
        ``$WAYLAND_DISPLAY`` is set.
    """
    if sys.platform in ('darwin', 'win32'):
        return True
    return bool(os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY'))


def show_image(image: np.ndarray, title: str = 'image',
               wait_time: float = 0.) -> bool:
    """Show an RGB image in a window when a display exists.

    Args:
        image (np.ndarray): uint8 RGB (H, W, 3).
        title (str): Window title. Defaults to 'image'.
        wait_time (float): Seconds to wait; 0 waits for a key press.

    Returns:
        bool: False (with a warning) when no display is available.
    """
    if not display_available():
        warnings.warn('--show: no display available ($DISPLAY is not set); '
                      'the picture was only written to disk.')
        return False
    get_visualizer().show(image, win_name=title, wait_time=wait_time)
    return True
