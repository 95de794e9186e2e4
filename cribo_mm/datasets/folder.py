# Copyright (c) cribo-mm contributors. All rights reserved.
"""Unlabelled images from any folder tree."""
import os
import os.path as osp
from typing import List, Optional, Sequence, Union

from mmengine.dataset import BaseDataset

from cribo_mm.registry import DATASETS

__all__ = ['IMG_EXTENSIONS', 'CrIBoImageFolder', 'scan_images']

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif',
                  '.tiff', '.webp')


def scan_images(root: str,
                extensions: Sequence[str] = IMG_EXTENSIONS,
                recursive: bool = True,
                follow_links: bool = True) -> List[str]:
    """List image files under ``root`` in a deterministic (sorted) order.

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
    found = []
    for dirpath, dirnames, filenames in os.walk(
            root, followlinks=follow_links):
        dirnames.sort()
        if not recursive:
            dirnames[:] = []
        # hidden files (e.g. macOS '._x.jpg') are skipped
        found.extend(
            osp.join(dirpath, f) for f in filenames
            if f.lower().endswith(exts) and not f.startswith('.'))
    found.sort(key=lambda p: osp.relpath(p, root))
    return found


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
        **kwargs: Other arguments of :class:`mmengine.dataset.BaseDataset`
            (``test_mode``, ``lazy_init``, ``max_refetch``, ...).

    Raises:
        FileNotFoundError: If the folder does not exist.
        ValueError: If it contains no image.
    """

    def __init__(self,
                 data_root: str = '',
                 data_prefix: Union[str, dict] = '',
                 extensions: Sequence[str] = IMG_EXTENSIONS,
                 recursive: bool = True,
                 pipeline: Sequence = (),
                 metainfo: Optional[dict] = None,
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
