# Copyright (c) cribo-mm contributors. All rights reserved.
"""The demo scenes as an MMSegmentation data set."""
from typing import List, Optional, Tuple

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS as SEG_DATASETS

from ..demo_scenes import DEMO_CLASSES, DEMO_PALETTE, ensure_demo_scenes
from ._check import check_seg_data_list

__all__ = ['DemoScenesSegDataset']


@SEG_DATASETS.register_module()
class DemoScenesSegDataset(BaseSegDataset):
    """Generated demo scenes with 7 classes (0 = background, included).

    The data are generated on first use, exactly as for
    :class:`~cribo_mm.datasets.CrIBoDemoScenes` (same arguments, same cache
    folder), so pretraining and dense evaluation share the files.

    Args:
        split (str): 'train' or 'val'. Defaults to 'train'.
        data_root (str, optional): Exact folder of a generated set (generated
            there if absent). Defaults to the cache folder.
        seed (int): Generation seed. Defaults to 0.
        num_train (int): Training images. Defaults to 256.
        num_val (int): Validation images. Defaults to 64.
        image_size (tuple[int, int]): ``(H, W)``. Defaults to (256, 256).
        cache_root (str, optional): Parent cache folder (else
            ``$CRIBO_DEMO_ROOT`` or ``~/.cache/cribo_mm/demo_scenes``).
        **kwargs: Other arguments of ``mmseg.datasets.BaseSegDataset``
            (``pipeline``, ``test_mode``, ...). ``data_prefix`` defaults to
            the split's ``images``/``labels`` folders.
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
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False,
                 **kwargs) -> None:
        if split not in ('train', 'val'):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        root = ensure_demo_scenes(data_root, seed, num_train, num_val,
                                  image_size, cache_root)
        kwargs.setdefault(
            'data_prefix',
            dict(img_path=f'{split}/images', seg_map_path=f'{split}/labels'))
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            data_root=str(root),
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """List image/label pairs, failing clearly when there are none.

        Returns:
            list[dict]: mmseg data infos.
        """
        return check_seg_data_list(self.__class__.__name__,
                                   super().load_data_list(),
                                   self.data_prefix.get('img_path', ''))
