# Copyright (c) cribo-mm contributors. All rights reserved.
"""COCO images listed by an annotation file (labels unused)."""
import contextlib
import io
import os
import os.path as osp
from typing import List, Optional, Sequence

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from cribo_mm.registry import DATASETS

__all__ = ['CrIBoCocoDataset']


@DATASETS.register_module()
class CrIBoCocoDataset(BaseDataset):
    """COCO images for self-supervised pretraining.

    The image list comes from a COCO-format annotation file read with
    pycocotools: ``instances_train2017.json`` (the CrIBo COCO setting;
    118 287 images) or ``image_info_unlabeled2017.json``. Annotations are
    not used. Every listed image is checked on disk when the data set is
    built, so a wrong folder fails at start.

    Args:
        ann_file (str): Annotation file, relative to ``data_root`` unless
            absolute. Defaults to 'annotations/instances_train2017.json'.
        data_root (str): Root of the COCO folder. Defaults to ''.
        data_prefix (str | dict): Image folder (``dict(img_path=...)``)
            relative to ``data_root``. Defaults to 'train2017'.
        missing (str): What to do with listed images that are not on disk:
            'error' (raise, listing a few) or 'skip' (drop them with a
            warning). If no listed image exists it always raises.
            Defaults to 'error'.
        pipeline (Sequence): Processing pipeline. Defaults to ().
        **kwargs: Other arguments of :class:`mmengine.dataset.BaseDataset`.

    Raises:
        FileNotFoundError: Missing annotation file, image folder or images.
        ValueError: Unparsable or empty annotation file.
    """

    def __init__(self,
                 ann_file: str = 'annotations/instances_train2017.json',
                 data_root: str = '',
                 data_prefix='train2017',
                 missing: str = 'error',
                 pipeline: Sequence = (),
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        if missing not in ('error', 'skip'):
            raise ValueError(f"missing must be 'error' or 'skip', got "
                             f'{missing!r}')
        if isinstance(data_prefix, str):
            data_prefix = dict(img_path=data_prefix)
        self.missing = missing
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=data_prefix,
            pipeline=pipeline,
            metainfo=metainfo,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """List the images of the annotation file that exist on disk.

        Returns:
            list[dict]: ``dict(img_path, img_id, height, width)`` per image,
            ordered by image id.
        """
        name = self.__class__.__name__
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'{name}: annotation file {self.ann_file!r} not found '
                f'(data_root={self.data_root!r}). Expected e.g. '
                "'annotations/instances_train2017.json' or "
                "'annotations/image_info_unlabeled2017.json'.")
        from pycocotools.coco import COCO
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                coco = COCO(self.ann_file)
        except Exception as e:  # noqa: BLE001
            raise ValueError(
                f'{name}: cannot parse annotation file '
                f'{self.ann_file!r}: {type(e).__name__}: {e}') from e
        ids = sorted(coco.getImgIds())
        if not ids:
            raise ValueError(f'{name}: annotation file {self.ann_file!r} '
                             'lists no image.')
        infos = coco.loadImgs(ids)
        del coco
        img_dir = self.data_prefix.get('img_path', '')
        if not osp.isdir(img_dir):
            raise FileNotFoundError(
                f'{name}: image folder {img_dir!r} not found (data_root='
                f'{self.data_root!r}, data_prefix={self.data_prefix}); it '
                f'should hold the images listed in {self.ann_file!r}.')
        on_disk = set(os.listdir(img_dir))
        data_list, missing = [], []
        for info in infos:
            fname = info['file_name']
            path = osp.join(img_dir, fname)
            exists = (fname in on_disk) if ('/' not in fname and
                                            os.sep not in fname) \
                else osp.isfile(path)
            if not exists:
                missing.append(path)
                continue
            data_list.append(
                dict(
                    img_path=path,
                    img_id=int(info['id']),
                    height=info.get('height'),
                    width=info.get('width')))
        if missing:
            examples = ', '.join(repr(m) for m in missing[:5])
            msg = (f'{name}: {len(missing)} of {len(infos)} images listed in '
                   f'{self.ann_file!r} are missing from {img_dir!r} '
                   f'(e.g. {examples}).')
            if not data_list:
                raise FileNotFoundError(msg + ' No listed image was found: '
                                        'check data_root and data_prefix.')
            if self.missing == 'error':
                raise FileNotFoundError(
                    msg + " Pass missing='skip' to train without them.")
            print_log(msg + ' They are skipped.', logger='current', level=30)
        return data_list
