# Copyright (c) cribo-mm contributors. All rights reserved.
"""Command-line pieces shared by the drawing tools of ``tools/analysis/``:
which images to draw, loading a config, and writing (and showing) the
pictures."""
import argparse
import os.path as osp
from typing import Dict, Iterable, List, Optional, Tuple

from .annotate import show_image
from .figures import Figure, render, tile
from .io import save_png

__all__ = [
    'add_image_selection_args', 'add_show_args', 'select_indices',
    'check_file', 'load_config', 'sample_png_name', 'save_figures'
]


def add_image_selection_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--start``, ``--num-images`` and ``--indices``.

    Args:
        parser (argparse.ArgumentParser): The parser, extended in place.
    """
    parser.add_argument(
        '--start', type=int, default=0, help='first image (default: 0)')
    parser.add_argument(
        '--num-images',
        type=int,
        default=4,
        help='number of images drawn (default: 4)')
    parser.add_argument(
        '--indices',
        type=int,
        nargs='+',
        help='image indices to draw (overrides --start/--num-images)')


def add_show_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--show`` and ``--wait-time``.

    Args:
        parser (argparse.ArgumentParser): The parser, extended in place.
    """
    parser.add_argument(
        '--show',
        action='store_true',
        help='also show the pictures in a window (needs a display)')
    parser.add_argument(
        '--wait-time',
        type=float,
        default=0.,
        help='seconds each shown picture stays (0: until a key press)')


def select_indices(total: int, indices: Optional[List[int]], start: int,
                   num: int) -> List[int]:
    """The image indices to draw.

    Args:
        total (int): Number of images available.
        indices (list[int], optional): Explicit indices (``--indices``);
            when given, ``start`` and ``num`` are ignored.
        start (int): First image (``--start``).
        num (int): Number of images from ``start`` (``--num-images``; at
            least 1 is drawn, at most up to the last image).

    Returns:
        list[int]: Indices in ``[0, total)``.

    Raises:
        IndexError: If ``start`` or an index is outside ``[0, total)``.
    """
    if indices is None:
        if start < 0 or start >= total:
            raise IndexError(f'--start {start} is outside the {total} '
                             'images.')
        indices = list(range(start, min(total, start + max(1, num))))
    bad = [i for i in indices if not 0 <= i < total]
    if bad:
        raise IndexError(f'image indices {bad} are outside the {total} '
                         'images.')
    return list(indices)


def check_file(path: str, what: str) -> None:
    """Raise a clear error when ``path`` is not a file.

    Args:
        path (str): The path (``~`` expanded).
        what (str): How the file is named in the error (e.g. 'checkpoint').

    Raises:
        FileNotFoundError: If ``path`` is not a file.
    """
    if not osp.isfile(osp.expanduser(path)):
        raise FileNotFoundError(f'{what} {path!r} does not exist or is not '
                                'a file.')


def load_config(path: str,
                cfg_options: Optional[Dict] = None,
                what: str = 'config'):
    """Read a config file and apply ``--cfg-options``.

    Args:
        path (str): The config file.
        cfg_options (dict, optional): Overrides (key=value).
        what (str): How the file is named in the error. Defaults to
            'config'.

    Returns:
        mmengine.Config: The config.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
    """
    from mmengine.config import Config
    check_file(path, what)
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def sample_png_name(img_path: str, index: int, suffix: str) -> str:
    """File name of the picture of one image: ``{index:05d}_{stem}_{suffix}``.

    Args:
        img_path (str): The image file (its stem names the picture; the
            index stands in for an empty stem).
        index (int): The image's index in the data set or file list.
        suffix (str): What the picture shows, e.g. 'views'.

    Returns:
        str: The PNG file name (no folder).
    """
    stem = osp.splitext(osp.basename(img_path))[0] or str(index)
    return f'{index:05d}_{stem}_{suffix}.png'


def save_figures(named_figures: Iterable[Tuple[Figure, str]],
                 out_dir: str,
                 grid: Optional[str] = None,
                 colors: Optional[int] = None,
                 show: bool = False,
                 wait_time: float = 0.,
                 show_grid: bool = False) -> List[str]:
    """Render figures to PNGs, one per figure, and optionally all stacked.

    Each figure is rendered and written as it comes (a generator keeps one
    picture at a time); the written paths are printed at the end.

    Args:
        named_figures (Iterable[tuple[Figure, str]]): ``(figure, file
            name)`` pairs, file names relative to ``out_dir``.
        out_dir (str): Folder of the PNGs.
        grid (str, optional): Also write all figures stacked into this PNG.
        colors (int, optional): Adaptive palette size of the PNGs (see
            :func:`save_png`).
        show (bool): Show each picture in a window. Defaults to False.
        wait_time (float): Seconds each shown picture stays (0: until a key
            press). Defaults to 0.
        show_grid (bool): With ``show``, also show the stacked picture.
            Defaults to False.

    Returns:
        list[str]: The written files, the grid last.
    """
    written, figures = [], []
    for figure, filename in named_figures:
        figures.append(figure)
        picture = render(figure)
        path = save_png(picture, osp.join(out_dir, filename), colors)
        written.append(path)
        if show:
            show_image(picture, osp.basename(path), wait_time)
    if grid:
        picture = render(tile(figures, cols=1, gap=4))
        written.append(save_png(picture, grid, colors))
        if show and show_grid:
            show_image(picture, osp.basename(grid), wait_time)
    for path in written:
        print(f'wrote {path}')
    return written
