# Copyright (c) cribo-mm contributors. All rights reserved.
"""Accumulated mIoU through MMSegmentation's ``IoUMetric`` arithmetic."""
import math
from typing import Dict, Optional, Sequence

import torch
from torch import Tensor

__all__ = ['IoUAccumulator', 'mean_std']


class IoUAccumulator:
    """Accumulate intersection/union areas over images and compute mIoU.

    The per-image areas come from ``mmseg``'s
    ``IoUMetric.intersect_and_union`` and the final numbers from
    ``IoUMetric.total_area_to_metrics``, so results match MMSegmentation's
    ``IoUMetric`` (classes absent from both prediction and ground truth
    have NaN IoU and are left out of the mean). Values are percentages, as
    in MMSegmentation's logs.

    Args:
        num_classes (int): Number of classes.
        ignore_index (int): Ground-truth value left out of the evaluation.
            Defaults to 255.
        class_names (Sequence[str], optional): Names for the per-class
            results; defaults to ``'0'``, ``'1'``, ...
    """

    def __init__(self,
                 num_classes: int,
                 ignore_index: int = 255,
                 class_names: Optional[Sequence[str]] = None) -> None:
        from mmseg.evaluation.metrics import IoUMetric
        self._metric = IoUMetric
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        if class_names is None:
            class_names = [str(i) for i in range(self.num_classes)]
        if len(class_names) != self.num_classes:
            raise ValueError(f'{len(class_names)} class names given for '
                             f'{self.num_classes} classes')
        self.class_names = [str(c) for c in class_names]
        self.reset()

    def reset(self) -> None:
        """Forget all accumulated areas."""
        zeros = torch.zeros(self.num_classes, dtype=torch.float64)
        self.area_intersect = zeros.clone()
        self.area_union = zeros.clone()
        self.area_pred = zeros.clone()
        self.area_label = zeros.clone()
        self.num_images = 0

    def update(self, pred: Tensor, label: Tensor) -> None:
        """Add one image.

        Args:
            pred (Tensor): Predicted label map (H, W), integer.
            label (Tensor): Ground-truth label map (H, W), integer, with
                ``ignore_index`` for unlabelled pixels.
        """
        if pred.shape != label.shape:
            raise ValueError(f'prediction {tuple(pred.shape)} and label '
                             f'{tuple(label.shape)} differ in shape')
        areas = self._metric.intersect_and_union(pred, label.to(pred),
                                                 self.num_classes,
                                                 self.ignore_index)
        for total, area in zip((self.area_intersect, self.area_union,
                                self.area_pred, self.area_label), areas):
            total += area.to(torch.float64)
        self.num_images += 1

    def compute(self) -> Dict:
        """Metrics over everything added so far.

        Returns:
            dict: ``aAcc``, ``mIoU`` and ``mAcc`` (floats, percent; NaN
            when nothing was evaluated), ``IoU`` and ``Acc`` (dicts from
            class name to percent or None for NaN) and ``num_images``.
        """
        ret = self._metric.total_area_to_metrics(
            self.area_intersect, self.area_union, self.area_pred,
            self.area_label, ['mIoU'])

        def mean(values) -> float:
            finite = [float(v) for v in values if not math.isnan(float(v))]
            return 100.0 * sum(finite) / len(finite) if finite else math.nan

        def per_class(values) -> Dict[str, Optional[float]]:
            return {
                name: None if math.isnan(float(v)) else 100.0 * float(v)
                for name, v in zip(self.class_names, values)
            }

        return dict(
            aAcc=100.0 * float(ret['aAcc']),
            mIoU=mean(ret['IoU']),
            mAcc=mean(ret['Acc']),
            IoU=per_class(ret['IoU']),
            Acc=per_class(ret['Acc']),
            num_images=self.num_images)


def mean_std(values) -> tuple:
    """Mean and sample standard deviation of the runs of a setting.

    Args:
        values (Iterable[float | None]): One value per run; None and NaN
            (a class absent from a run) are left out.

    Returns:
        tuple[float, float]: ``(mean, std)``; std is 0 for one value, both
        NaN for none.
    """
    values = [float(v) for v in values if v is not None and v == v]
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.
    return mean, math.sqrt(
        sum((v - mean)**2 for v in values) / (len(values) - 1))
