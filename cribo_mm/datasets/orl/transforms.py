# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL's stage-3 transforms: neighbour loading, RoI sampling, branches.

A stage-3 pipeline is::

    ORLLoadImagePair -> ORLRoIJitter -> ORLSelectRoIPair -> ORLMultiBranch
    -> PackInputs

and yields six views in ``inputs``: the two 224 px image views, the
intra-RoI pair and the inter-RoI pair (96 px each).
"""
from typing import List, Sequence

import numpy as np
from mmcv.transforms import BaseTransform, Compose
from mmcv.transforms.utils import cache_randomness

from cribo_mm.registry import TRANSFORMS
from ..transforms.loading import CrIBoLoadImageFromFile
from .boxes import crop_resize, jitter_box

__all__ = [
    'ORLLoadImagePair', 'ORLMultiBranch', 'ORLRoIJitter', 'ORLSelectRoIPair'
]


@TRANSFORMS.register_module()
class ORLLoadImagePair(CrIBoLoadImageFromFile):
    """Load an image and one of its neighbours, picked uniformly.

    **Required Keys:** ``img_path``, ``knn_img_paths``, ``knn_bbox_pair``

    **Added Keys:** ``img`` and ``knn_img`` (H, W, 3) uint8 BGR,
    ``img_shape``, ``ori_shape``, ``knn_index`` (the neighbour's position),
    ``roi_pairs`` (that neighbour's pairs, (P, 8) float64).

    Args:
        **kwargs: Arguments of :class:`CrIBoLoadImageFromFile`.
    """

    @cache_randomness
    def _pick(self, num: int) -> int:
        return int(np.random.randint(num))

    def transform(self, results: dict):
        """Load both images and the neighbour's pairs.

        Args:
            results (dict): A sample of :class:`ORLPairDataset`.

        Returns:
            dict | None: ``results`` updated, or None for a skipped
            unreadable image.
        """
        k = self._pick(len(results['knn_img_paths']))
        results = super().transform(results)
        if results is None:
            return None
        nb = dict(img_path=results['knn_img_paths'][k])
        nb = super().transform(nb)
        if nb is None:
            return None
        results['knn_img'] = nb['img']
        results['knn_index'] = k
        results['roi_pairs'] = np.asarray(results['knn_bbox_pair'][k],
                                          np.float64).reshape(-1, 8)
        return results


@TRANSFORMS.register_module()
class ORLRoIJitter(BaseTransform):
    """Intra-RoI pair: a random kept box and a jittered copy of it.

    See :func:`cribo_mm.datasets.orl.boxes.jitter_box` for the jitter.

    **Required Keys:** ``img``, ``bbox``

    **Added Keys:** ``intra_bbox`` (2, 4) float64 ``(x, y, w, h)``.

    Args:
        area_range (tuple[float, float]): Defaults to (0.5, 2).
        ratio_range (tuple[float, float]): Defaults to (0.5, 2).
        shift (float): Defaults to 0.5.
        min_iou (float): Defaults to 0.5.
        max_attempts (int): Defaults to 200.
    """

    def __init__(self,
                 area_range=(0.5, 2.),
                 ratio_range=(0.5, 2.),
                 shift: float = 0.5,
                 min_iou: float = 0.5,
                 max_attempts: int = 200) -> None:
        self.area_range = tuple(area_range)
        self.ratio_range = tuple(ratio_range)
        self.shift = shift
        self.min_iou = min_iou
        self.max_attempts = max_attempts

    def transform(self, results: dict) -> dict:
        """Sample the intra-RoI pair.

        Args:
            results (dict): With ``img`` and ``bbox``.

        Returns:
            dict: ``results`` with ``intra_bbox``.
        """
        boxes = results['bbox']
        b1 = [float(v) for v in boxes[np.random.randint(len(boxes))]]
        h, w = results['img'].shape[:2]
        b2 = jitter_box(b1, w, h, np.random, self.area_range, self.ratio_range,
                        self.shift, self.min_iou, self.max_attempts)
        results['intra_bbox'] = np.array([b1, b2], np.float64)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(area_range={self.area_range}, '
                f'ratio_range={self.ratio_range}, shift={self.shift}, '
                f'min_iou={self.min_iou}, max_attempts={self.max_attempts})')


@TRANSFORMS.register_module()
class ORLSelectRoIPair(BaseTransform):
    """Inter-RoI pair: one stored pair of the chosen neighbour, uniformly.

    **Required Keys:** ``roi_pairs``

    **Added Keys:** ``inter_bbox`` (2, 4) float64: the box in the image,
    then the box in the neighbour.
    """

    def transform(self, results: dict) -> dict:
        """Pick the pair.

        Args:
            results (dict): With ``roi_pairs`` (P, 8).

        Returns:
            dict: ``results`` with ``inter_bbox``.
        """
        pairs = results['roi_pairs']
        p = pairs[np.random.randint(len(pairs))]
        results['inter_bbox'] = np.asarray(p, np.float64).reshape(2, 4)
        return results


@TRANSFORMS.register_module()
class ORLMultiBranch(BaseTransform):
    """Crop the RoIs and run the per-branch view pipelines.

    The image views are ``img_pipelines[v](img)``; the four RoIs are cropped
    and resized to ``roi_size`` (bilinear) and the first (second) box of each
    pair goes through ``roi_pipelines[0]`` (``[1]``), so the two branches
    keep their asymmetric blur/solarize.

    **Required Keys:** ``img``, ``knn_img``, ``intra_bbox``, ``inter_bbox``

    **Modified Keys:** ``img`` becomes a list of six arrays: image view 1,
    image view 2, intra RoI 1, intra RoI 2, inter RoI 1 (from the image),
    inter RoI 2 (from the neighbour).

    Args:
        img_pipelines (Sequence[Sequence[dict]]): The two image-view
            pipelines (stage 1's, with the random resized crop).
        roi_pipelines (Sequence[Sequence[dict]]): The two RoI pipelines
            (same photometric transforms, no crop).
        roi_size (int): RoI side. Defaults to 96.
    """

    def __init__(self,
                 img_pipelines: Sequence[Sequence[dict]],
                 roi_pipelines: Sequence[Sequence[dict]],
                 roi_size: int = 96) -> None:
        if len(img_pipelines) != 2 or len(roi_pipelines) != 2:
            raise ValueError('ORLMultiBranch needs two image and two RoI '
                             'pipelines')
        self.img_pipelines = [Compose(p) for p in img_pipelines]
        self.roi_pipelines = [Compose(p) for p in roi_pipelines]
        self.roi_size = roi_size

    @staticmethod
    def _run(pipeline: Compose, img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        out = pipeline(dict(img=img, img_shape=(h, w), ori_shape=(h, w)))
        return out['img']

    def transform(self, results: dict) -> dict:
        """Build the six views.

        Args:
            results (dict): See the required keys.

        Returns:
            dict: ``results`` with ``img`` a list of six arrays.
        """
        img, nb = results['img'], results['knn_img']
        size = self.roi_size
        intra = [crop_resize(img, b, size) for b in results['intra_bbox']]
        ib = results['inter_bbox']
        inter = [crop_resize(img, ib[0], size), crop_resize(nb, ib[1], size)]
        views: List[np.ndarray] = [
            self._run(self.img_pipelines[0], img.copy()),
            self._run(self.img_pipelines[1], img.copy()),
            self._run(self.roi_pipelines[0], intra[0]),
            self._run(self.roi_pipelines[1], intra[1]),
            self._run(self.roi_pipelines[0], inter[0]),
            self._run(self.roi_pipelines[1], inter[1]),
        ]
        results['img'] = views
        results.pop('knn_img', None)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(img_pipelines='
                f'{self.img_pipelines}, roi_pipelines={self.roi_pipelines}, '
                f'roi_size={self.roi_size})')
