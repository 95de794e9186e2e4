# Copyright (c) cribo-mm contributors. All rights reserved.
"""Recursive folder listing that survives symbolic-link loops.

mmengine 0.10.7's ``LocalBackend.list_dir_or_file(recursive=True)`` (used
by mmpretrain's ``ImageNet``/``CustomDataset`` to scan class folders)
follows links into folders without remembering where it has been: a link
loop such as ``train/n01/up -> ..`` ends in ``OSError: Too many levels of
symbolic links`` after listing every file dozens of times (and files of
other classes under this one). :func:`list_dir_or_file` is a drop-in
replacement (same arguments, same relative paths, same order) that enters
every real folder once, never a folder above the listed one, and logs how
many link duplicates it left out.
"""
import logging
import os
import os.path as osp
from typing import Iterator, Optional, Tuple, Union

from mmengine.logging import print_log

__all__ = ['list_dir_or_file', 'reached_again']


def reached_again(real_dir: str, seen: set, root_real: str) -> bool:
    """Whether a folder met in a scan was reached through a symbolic link
    before: its real path was entered already (a link loop such as
    ``a/up -> ..``, or a second link to one folder), or it lies above the
    scanned root.

    Args:
        real_dir (str): ``os.path.realpath`` of the folder.
        seen (set): Real paths of the folders entered so far.
        root_real (str): ``os.path.realpath`` of the scanned root.

    Returns:
        bool: True when the folder must not be entered again.
    """
    return real_dir in seen or root_real.startswith(
        real_dir.rstrip(os.sep) + os.sep)


def list_dir_or_file(self,
                     dir_path: Union[str, os.PathLike],
                     list_dir: bool = True,
                     list_file: bool = True,
                     suffix: Optional[Union[str, Tuple[str]]] = None,
                     recursive: bool = False) -> Iterator[str]:
    """Loop-safe ``LocalBackend.list_dir_or_file``.

    Args:
        self: The ``LocalBackend`` (unused).
        dir_path (str | Path): Folder to list.
        list_dir (bool): Yield folders. Defaults to True.
        list_file (bool): Yield files. Defaults to True.
        suffix (str | tuple[str], optional): Only files with this suffix.
        recursive (bool): Descend into sub-folders. Defaults to False.

    Yields:
        str: Paths relative to ``dir_path``.
    """
    if list_dir and suffix is not None:
        raise TypeError('`suffix` should be None when `list_dir` is True')
    if (suffix is not None) and not isinstance(suffix, (str, tuple)):
        raise TypeError('`suffix` must be a string or tuple of strings')
    root = str(dir_path)
    root_real = osp.realpath(root)
    seen = {root_real}
    skipped = []

    def walk(path):
        for entry in os.scandir(path):
            if not entry.name.startswith('.') and entry.is_file():
                rel_path = osp.relpath(entry.path, root)
                if (suffix is None or rel_path.endswith(suffix)) and list_file:
                    yield rel_path
            elif osp.isdir(entry.path):
                real = osp.realpath(entry.path)
                if reached_again(real, seen, root_real):
                    skipped.append(entry.path)
                    continue
                seen.add(real)
                if list_dir:
                    yield osp.relpath(entry.path, root)
                if recursive:
                    yield from walk(entry.path)

    yield from walk(root)
    if skipped:
        print_log(
            f'{root!r}: {len(skipped)} folder(s) reached again through '
            f'symbolic links were not listed again (e.g. {skipped[0]!r}).',
            logger='current',
            level=logging.WARNING)
