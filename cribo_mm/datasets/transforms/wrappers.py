# Copyright (c) cribo-mm contributors. All rights reserved.
"""Two-view wrapper that keeps the geometry of every view."""
import copy
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform, Compose

from cribo_mm.registry import TRANSFORMS

__all__ = ['CrIBoMultiView']

Transform = Union[dict, Callable[[dict], dict]]


@TRANSFORMS.register_module()
class CrIBoMultiView(BaseTransform):
    """Produce several views of one image and collect their crop geometry.

    mmpretrain's ``MultiView`` keeps only ``img`` of each view. This wrapper
    runs every view pipeline on a shallow copy of the input results, stacks
    the views' images into a list and their geometry into tensors, so that
    ``PackInputs(algorithm_keys=('crop_bbox', 'crop_flip'))`` hands them to
    the model in each ``DataSample``.

    Each view pipeline should start with
    :class:`~cribo_mm.datasets.transforms.CrIBoRandomResizedCrop` (and may
    contain :class:`~cribo_mm.datasets.transforms.CrIBoRandomFlip`); a view
    without a recorded box gets the whole image as its box. Transforms in
    the view pipelines must not modify the input image in place (mmcv and
    mmpretrain transforms return new arrays).

    **Required Keys:** ``img``

    **Modified Keys:** ``img`` (list of ``num_views`` arrays), ``img_shape``
    (of the first view)

    **Added Keys:**

    - ``crop_bbox`` (Tensor float32 ``(num_views, 4)``): ``[x1, y1, x2, y2]``
      of each view in original-image pixels.
    - ``crop_flip`` (Tensor bool ``(num_views,)``): horizontal flip flags.

    Args:
        transforms (list[list[dict | callable]]): One pipeline per group of
            views.
        num_views (int | list[int], optional): Views drawn from each
            pipeline. Defaults to one view per pipeline.
        deepcopy (bool): Deep-copy the results for each view instead of a
            shallow copy (only needed with in-place transforms).
            Defaults to False.
    """

    def __init__(self,
                 transforms: Sequence[Sequence[Transform]],
                 num_views: Optional[Union[int, Sequence[int]]] = None,
                 deepcopy: bool = False) -> None:
        if not transforms or isinstance(transforms[0], dict):
            raise TypeError('transforms must be a list of view pipelines '
                            '(a list of lists of transforms)')
        if num_views is None:
            num_views = [1] * len(transforms)
        elif isinstance(num_views, int):
            num_views = [num_views] * len(transforms)
        num_views = [int(n) for n in num_views]
        if len(num_views) != len(transforms):
            raise ValueError(f'{len(transforms)} pipelines but num_views='
                             f'{num_views}')
        self.num_views = num_views
        self.deepcopy = deepcopy
        self.pipelines: List[Compose] = [
            Compose([
                TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipe
            ]) for pipe in transforms
        ]
        self.view_pipelines: List[Compose] = []
        for pipe, n in zip(self.pipelines, num_views):
            self.view_pipelines.extend([pipe] * n)

    def transform(self, results: Dict) -> Optional[Dict]:
        """Run every view pipeline and collect images and geometry.

        Args:
            results (dict): Results of the loading transform.

        Returns:
            dict | None: The updated results (None if a view pipeline
            dropped the sample).
        """
        imgs, boxes, flips = [], [], []
        h, w = results['img'].shape[:2]
        for pipe in self.view_pipelines:
            inputs = copy.deepcopy(results) if self.deepcopy else dict(results)
            out = pipe(inputs)
            if out is None:
                return None
            imgs.append(out['img'])
            boxes.append(
                out.get('crop_bbox', np.array([0, 0, w, h], np.float32)))
            flips.append(bool(out.get('crop_flip', False)))
        results['img'] = imgs
        results['img_shape'] = imgs[0].shape[:2]
        results['crop_bbox'] = torch.as_tensor(
            np.stack(boxes), dtype=torch.float32)
        results['crop_flip'] = torch.tensor(flips, dtype=torch.bool)
        return results

    def __repr__(self) -> str:
        s = self.__class__.__name__ + '('
        for i, (p, n) in enumerate(zip(self.pipelines, self.num_views)):
            s += f'\n  pipeline {i + 1} ({n} view{"s" * (n > 1)}): {p}'
        return s + ')'
