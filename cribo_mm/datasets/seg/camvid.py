# Copyright (c) cribo-mm contributors. All rights reserved.
"""CamVid (11-class SegNet version) as an MMSegmentation data set."""
from typing import List, Optional

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS as SEG_DATASETS

from ._check import check_seg_data_list, check_seg_folders

__all__ = ['CrIBoCamVidDataset']


@SEG_DATASETS.register_module()
class CrIBoCamVidDataset(BaseSegDataset):
    """CamVid street scenes, 11 classes, label 255 = void (ignored).

    Expected layout (``data/camvid`` in the configs; written by
    ``tools/dataset_converters/camvid.py``)::

        <data_root>/train/images/*.jpg   <data_root>/train/labels/*.png
        <data_root>/val/images/*.jpg     <data_root>/val/labels/*.png

    Labels are uint8 class indices 0..10 (sky, building, pole, road,
    sidewalk, tree, sign/symbol, fence, car, pedestrian, bicyclist) and 255.

    Args:
        data_root (str): The CamVid folder.
        split (str): 'train' or 'val'; sets the default ``data_prefix``.
            Defaults to 'train'.
        **kwargs: Other arguments of ``mmseg.datasets.BaseSegDataset``.
    """

    METAINFO = dict(
        classes=('sky', 'building', 'pole', 'road', 'sidewalk', 'tree', 'sign',
                 'fence', 'car', 'pedestrian', 'bicyclist'),
        palette=[[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128],
                 [0, 0, 192], [128, 128, 0], [192, 128, 128], [64, 64, 128],
                 [64, 0, 128], [64, 64, 0], [0, 128, 192]])

    def __init__(self,
                 data_root: Optional[str] = None,
                 split: str = 'train',
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False,
                 ignore_index: int = 255,
                 **kwargs) -> None:
        kwargs.setdefault(
            'data_prefix',
            dict(img_path=f'{split}/images', seg_map_path=f'{split}/labels'))
        check_seg_folders(self.__class__.__name__, data_root,
                          kwargs['data_prefix'])
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            ignore_index=ignore_index,
            data_root=data_root,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """List image/label pairs, failing clearly when there are none.

        Returns:
            list[dict]: mmseg data infos.
        """
        return check_seg_data_list(self.__class__.__name__,
                                   super().load_data_list(),
                                   self.data_prefix.get('img_path', ''))
