# Copyright (c) cribo-mm contributors. All rights reserved.
"""Command-line pieces shared by the drawing tools of ``tools/analysis/``:
which images to draw, showing the pictures, and loading a config."""
import argparse
import os.path as osp
from typing import Dict, List, Optional

__all__ = [
    'add_image_selection_args', 'add_show_args', 'select_indices',
    'check_file', 'load_config'
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
