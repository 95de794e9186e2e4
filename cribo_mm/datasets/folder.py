# Copyright (c) cribo-mm contributors. All rights reserved.
"""Unlabelled images from any folder tree."""
import logging
import os
import os.path as osp
from typing import List, Optional, Sequence, Union

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from cribo_mm.registry import DATASETS
from cribo_mm.utils.listing import reached_again

__all__ = ['IMG_EXTENSIONS', 'CrIBoImageFolder', 'scan_images']

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif',
                  '.tiff', '.webp')


def scan_images(root: str,
                extensions: Sequence[str] = IMG_EXTENSIONS,
                recursive: bool = True,
                follow_links: bool = True) -> List[str]:
    """List image files under ``root`` in a deterministic (sorted) order.

    Every file and folder is listed once, by its real path: a folder reached
    again through a symbolic link (a link loop such as ``a/up -> ..``, or
    two links to one folder) is not descended into again, nor a link to a
    folder above ``root``, and several links to one image give one entry
    (the first in sorted order). How many duplicates were dropped is logged
    as a warning.

    Args:
        root (str): Folder to scan.
        extensions (Sequence[str]): Accepted suffixes, case-insensitive.
            Defaults to :data:`IMG_EXTENSIONS`.
        recursive (bool): Descend into sub-folders. Defaults to True.
        follow_links (bool): Follow symbolic links to folders.
            Defaults to True.

    Returns:
        list[str]: Full paths, sorted by their path relative to ``root``.

    Raises:
        FileNotFoundError: If ``root`` is not a folder.
    """
    if not osp.isdir(root):
        raise FileNotFoundError(f'Image folder {root!r} does not exist or is '
                                'not a directory.')
    exts = tuple(e.lower() for e in extensions)
    found = []  # (path, real path)
    root_real = osp.realpath(root)
    seen_dirs = set()
    dup_dirs = []
    for dirpath, dirnames, filenames in os.walk(
            root, followlinks=follow_links):
        real_dir = osp.realpath(dirpath)
        if dirpath != root and reached_again(real_dir, seen_dirs, root_real):
            dup_dirs.append(dirpath)
            dirnames[:] = []
            continue
        seen_dirs.add(real_dir)
        dirnames.sort()
        if not recursive:
            dirnames[:] = []
        for f in filenames:
            # hidden files (e.g. macOS '._x.jpg') are skipped
            if f.startswith('.') or not f.lower().endswith(exts):
                continue
            path = osp.join(dirpath, f)
            real = osp.realpath(path) if osp.islink(path) else osp.join(
                real_dir, f)
            found.append((path, real))
    found.sort(key=lambda item: osp.relpath(item[0], root))
    unique, seen_files, dup_files = [], set(), []
    for path, real in found:
        if real in seen_files:
            dup_files.append(path)
        else:
            seen_files.add(real)
            unique.append(path)
    if dup_dirs or dup_files:
        example = (dup_dirs or dup_files)[0]
        print_log(
            f'{root!r}: {len(dup_dirs)} folder(s) and {len(dup_files)} '
            'image(s) reached again through symbolic links were listed '
            f'once (e.g. {example!r}).',
            logger='current',
            level=logging.WARNING)
    return unique


@DATASETS.register_module()
class CrIBoImageFolder(BaseDataset):
    """Every image under a folder, recursively; no labels.

    Suitable for any unlabelled collection (e.g. COCO ``train2017`` without
    its annotation file, CamVid images, your own photos).

    Args:
        data_root (str): Root folder. Defaults to ''.
        data_prefix (str | dict): Sub-folder with the images, as a string or
            ``dict(img_path=...)``, joined to ``data_root``. Defaults to ''.
        extensions (Sequence[str]): Accepted suffixes (case-insensitive).
            Defaults to :data:`IMG_EXTENSIONS`.
        recursive (bool): Descend into sub-folders. Defaults to True.
        pipeline (Sequence): Processing pipeline. Defaults to ().
        max_pixels (int, optional): Pixel limit of the pipeline's image
            loading steps (``CrIBoLoadImageFromFile`` and subclasses), which
            refuse larger images from their header, before decoding. None
            keeps their own setting (default 89.5 M pixels).
        **kwargs: Other arguments of :class:`mmengine.dataset.BaseDataset`
            (``test_mode``, ``lazy_init``, ``max_refetch``, ...).

    Raises:
        FileNotFoundError: If the folder does not exist.
        ValueError: If it contains no image, or ``max_pixels`` is given
            without a loading step to apply it to.
    """

    def __init__(self,
                 data_root: str = '',
                 data_prefix: Union[str, dict] = '',
                 extensions: Sequence[str] = IMG_EXTENSIONS,
                 recursive: bool = True,
                 pipeline: Sequence = (),
                 metainfo: Optional[dict] = None,
                 max_pixels: Optional[int] = None,
                 **kwargs) -> None:
        if isinstance(data_prefix, str):
            data_prefix = dict(img_path=data_prefix)
        self.extensions = tuple(extensions)
        self.recursive = recursive
        super().__init__(
            ann_file='',
            data_root=data_root,
            data_prefix=data_prefix,
            pipeline=pipeline,
            metainfo=metainfo,
            **kwargs)
        if max_pixels is not None:
            self._set_max_pixels(max_pixels)

    def _set_max_pixels(self, max_pixels: int) -> None:
        """Apply a pixel limit to the loading steps of the pipeline."""
        from .transforms.loading import (CrIBoLoadImageFromFile,
                                         validate_max_pixels)
        validate_max_pixels(max_pixels, type(self).__name__)
        steps = [
            t for t in getattr(self.pipeline, 'transforms', [])
            if isinstance(t, CrIBoLoadImageFromFile)
        ]
        if not steps:
            raise ValueError(
                f'{self.__class__.__name__}: max_pixels={max_pixels} needs a '
                'CrIBoLoadImageFromFile step in the pipeline')
        for step in steps:
            step.max_pixels = max_pixels

    def load_data_list(self) -> List[dict]:
        """Scan the folder.

        Returns:
            list[dict]: ``dict(img_path=...)`` per image.
        """
        root = self.data_prefix.get('img_path', '') or self.data_root
        files = scan_images(root, self.extensions, self.recursive)
        if not files:
            raise ValueError(
                f'{self.__class__.__name__}: no image with extension '
                f'{"/".join(self.extensions)} under {root!r} '
                f'(recursive={self.recursive}).')
        return [dict(img_path=p) for p in files]
