# Copyright (c) cribo-mm contributors. All rights reserved.
"""Pretraining data set over the generated demo scenes."""
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

from mmengine.dataset import BaseDataset

from cribo_mm.registry import DATASETS
from .demo_scenes import DEMO_CLASSES, DEMO_PALETTE, ensure_demo_scenes

__all__ = ['CrIBoDemoScenes']


@DATASETS.register_module()
class CrIBoDemoScenes(BaseDataset):
    """The embedded demo scenes (generated on first use, no download).

    See :mod:`cribo_mm.datasets.demo_scenes` for what the images show and
    where they are cached. Each sample also carries ``seg_map_path`` (the
    class mask), unused by pretraining.

    Args:
        split (str): 'train' or 'val'. Defaults to 'train'.
        data_root (str, optional): Exact folder of a generated set (it is
            generated there if absent). Defaults to the cache folder of the
            generation arguments below.
        seed (int): Generation seed. Defaults to 0.
        num_train (int): Training images. Defaults to 256.
        num_val (int): Validation images. Defaults to 64.
        image_size (tuple[int, int]): ``(H, W)``. Defaults to (256, 256).
        cache_root (str, optional): Parent cache folder (else
            ``$CRIBO_DEMO_ROOT`` or ``~/.cache/cribo_mm/demo_scenes``).
        pipeline (Sequence): Processing pipeline. Defaults to ().
        **kwargs: Other arguments of :class:`mmengine.dataset.BaseDataset`.
    """

    METAINFO = dict(classes=DEMO_CLASSES, palette=DEMO_PALETTE)

    def __init__(self,
                 split: str = 'train',
                 data_root: Optional[str] = None,
                 seed: int = 0,
                 num_train: int = 256,
                 num_val: int = 64,
                 image_size: Tuple[int, int] = (256, 256),
                 cache_root: Optional[str] = None,
                 pipeline: Sequence = (),
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        if split not in ('train', 'val'):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        self.split = split
        root = ensure_demo_scenes(data_root, seed, num_train, num_val,
                                  image_size, cache_root)
        super().__init__(
            ann_file='',
            data_root=str(root),
            data_prefix=dict(
                img_path=f'{split}/images', seg_map_path=f'{split}/labels'),
            pipeline=pipeline,
            metainfo=metainfo,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """List the images of the split.

        Returns:
            list[dict]: ``dict(img_path, seg_map_path)`` per image.
        """
        img_dir = self.data_prefix['img_path']
        seg_dir = self.data_prefix['seg_map_path']
        if not osp.isdir(img_dir):
            raise FileNotFoundError(
                f'{self.__class__.__name__}: {img_dir!r} is missing; '
                f'{self.data_root!r} is not a demo scenes folder.')
        names = sorted(f for f in os.listdir(img_dir) if f.endswith('.jpg'))
        if not names:
            raise ValueError(f'{self.__class__.__name__}: no image in '
                             f'{img_dir!r}.')
        return [
            dict(
                img_path=osp.join(img_dir, n),
                seg_map_path=osp.join(seg_dir, n[:-4] + '.png')) for n in names
        ]
