# Copyright (c) cribo-mm contributors. All rights reserved.
"""Colour jitter that runs on numpy 2, with fast OpenCV kernels."""
from typing import Dict

import cv2
import mmcv
import numpy as np
from mmpretrain.datasets.transforms import ColorJitter

from cribo_mm.registry import TRANSFORMS
from cribo_mm.utils.compat import adjust_hue

__all__ = [
    'CrIBoColorJitter', 'adjust_brightness', 'adjust_contrast',
    'adjust_saturation', 'adjust_hue'
]


def adjust_brightness(img: np.ndarray, factor: float) -> np.ndarray:
    """Blend a uint8 image with black: ``saturate(img * factor)``.

    Args:
        img (np.ndarray): ``(H, W, C)`` uint8 image.
        factor (float): Non-negative brightness factor.

    Returns:
        np.ndarray: The adjusted uint8 image (rounded, saturated).
    """
    return cv2.convertScaleAbs(img, alpha=float(factor), beta=0.)


def adjust_contrast(img: np.ndarray, factor: float) -> np.ndarray:
    """Blend a uint8 BGR image with its mean grey level.

    ``saturate(img * factor + m * (1 - factor))`` with ``m`` the rounded mean
    of the luma image (as Pillow's ``ImageEnhance.Contrast`` and mmcv do).

    Args:
        img (np.ndarray): ``(H, W, 3)`` uint8 BGR image.
        factor (float): Non-negative contrast factor.

    Returns:
        np.ndarray: The adjusted uint8 image.
    """
    mean = round(cv2.mean(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))[0])
    return cv2.addWeighted(img, float(factor), img, 0.,
                           mean * (1. - float(factor)))


def adjust_saturation(img: np.ndarray, factor: float) -> np.ndarray:
    """Blend a uint8 BGR image with its grey-level version.

    Args:
        img (np.ndarray): ``(H, W, 3)`` uint8 BGR image.
        factor (float): Non-negative saturation factor.

    Returns:
        np.ndarray: ``saturate(img * factor + gray * (1 - factor))``, uint8.
    """
    gray = cv2.cvtColor(
        cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return cv2.addWeighted(img, float(factor), gray, 1. - float(factor), 0.)


@TRANSFORMS.register_module()
class CrIBoColorJitter(ColorJitter):
    """mmpretrain's ``ColorJitter`` with numpy-2-safe, faster kernels.

    The random parameters (factors drawn uniformly as in torchvision, a
    random order of the four adjustments) come from ``ColorJitter``. Two
    things differ from it on the mmcv 2.1 / numpy 2 stack:

    * mmcv's hue step raises ``OverflowError`` for negative factors under
      numpy 2 (both backends); :func:`adjust_hue` does the same rotation.
    * With ``backend='cv2'``, brightness, contrast and saturation use the
      OpenCV blends above (mmcv's contrast builds a full histogram and
      float copies, about 5x slower); ``backend='pillow'`` keeps mmcv's
      Pillow implementations of these three.

    Images are uint8 BGR (mmcv convention).

    Args:
        brightness (float | Sequence[float]): See ``ColorJitter``.
        contrast (float | Sequence[float]): See ``ColorJitter``.
        saturation (float | Sequence[float]): See ``ColorJitter``.
        hue (float | Sequence[float]): See ``ColorJitter``.
        backend (str): 'cv2' or 'pillow'. Defaults to 'cv2'.
    """

    def __init__(self,
                 brightness=0.,
                 contrast=0.,
                 saturation=0.,
                 hue=0.,
                 backend: str = 'cv2') -> None:
        super().__init__(brightness, contrast, saturation, hue, backend)

    def transform(self, results: Dict) -> Dict:
        """Jitter ``results['img']``.

        Args:
            results (dict): Must contain ``img`` (uint8 BGR).

        Returns:
            dict: The updated results.
        """
        img = results['img']
        order, brightness, contrast, saturation, hue = self._rand_params()
        fast = self.backend == 'cv2'
        for index in order:
            if index == 0 and brightness is not None:
                img = adjust_brightness(img, brightness) if fast else \
                    mmcv.adjust_brightness(img, brightness, self.backend)
            elif index == 1 and contrast is not None:
                img = adjust_contrast(img, contrast) if fast else \
                    mmcv.adjust_contrast(img, contrast, self.backend)
            elif index == 2 and saturation is not None:
                img = adjust_saturation(img, saturation) if fast else \
                    mmcv.adjust_color(img, alpha=saturation,
                                      backend=self.backend)
            elif index == 3 and hue is not None:
                img = adjust_hue(img, hue)
        results['img'] = img
        return results
