# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL's stage-3 data set: images with their RoI correspondences."""
import os.path as osp
from typing import List, Optional, Sequence

from mmengine.dataset import BaseDataset

from cribo_mm.registry import DATASETS
from .annotations import load_orl_json, resolve_image_paths

__all__ = ['ORLPairDataset']


@DATASETS.register_module()
class ORLPairDataset(BaseDataset):
    """Images of an ORL correspondence file (stage-2 output).

    The file (layout in :mod:`cribo_mm.datasets.orl.annotations`) is
    validated on load; a malformed one raises
    :class:`ORLAnnotationError` naming the file and the key. Each sample
    carries everything the ORL transforms need, so the neighbour image is
    picked (uniformly, by :class:`ORLLoadImagePair`) in the pipeline.

    Args:
        ann_file (str): Correspondence JSON, relative to ``data_root``
            unless absolute.
        data_root (str): Root folder. Defaults to ''.
        data_prefix (str | dict): Image folder (``dict(img_path=...)``)
            relative to ``data_root``; the file names of the JSON are
            relative to it and must stay inside it (``../`` escapes,
            absolute paths and links elsewhere are refused). Defaults to
            ''.
        check_files (bool): Check on load that every image exists.
            Defaults to True.
        pipeline (Sequence): Processing pipeline. Defaults to ().
        **kwargs: Other arguments of :class:`mmengine.dataset.BaseDataset`.

    Raises:
        FileNotFoundError: Missing annotation file or images.
        ORLAnnotationError: Malformed annotation file.
    """

    def __init__(self,
                 ann_file: str,
                 data_root: str = '',
                 data_prefix='',
                 check_files: bool = True,
                 pipeline: Sequence = (),
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        if isinstance(data_prefix, str):
            data_prefix = dict(img_path=data_prefix)
        self.check_files = check_files
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=data_prefix,
            pipeline=pipeline,
            metainfo=metainfo,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """Read the correspondence file.

        Returns:
            list[dict]: Per image ``img_path``, ``img_id``, ``bbox`` (its
            filtered boxes, ``(x, y, w, h)``), ``knn_img_paths`` and
            ``knn_bbox_pair`` (per neighbour a list of 8-number pairs).
        """
        name = self.__class__.__name__
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'{name}: correspondence file {self.ann_file!r} not found '
                f'(data_root={self.data_root!r}).')
        data = load_orl_json(self.ann_file, 'correspondence')
        img_dir = self.data_prefix.get('img_path', '')
        paths = resolve_image_paths(data['images']['file_name'], img_dir,
                                    self.ann_file)
        if self.check_files:
            missing = [p for p in paths if not osp.isfile(p)]
            if missing:
                raise FileNotFoundError(
                    f'{name}: {len(missing)} of {len(paths)} images listed in '
                    f'{self.ann_file!r} are missing, e.g. {missing[0]!r}.')
        ann = data['pseudo_annotations']
        return [
            dict(
                img_path=paths[i],
                img_id=ann['image_id'][i],
                bbox=ann['bbox'][i],
                knn_img_paths=[paths[j] for j in ann['knn_image_id'][i]],
                knn_bbox_pair=ann['knn_bbox_pair'][i])
            for i in range(len(paths))
        ]
