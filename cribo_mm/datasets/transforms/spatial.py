# Copyright (c) cribo-mm contributors. All rights reserved.
"""Spatial transforms that record their geometry in original-image pixels.

:class:`CrIBoRandomResizedCrop` writes ``crop_bbox`` (``[x1, y1, x2, y2]``,
float32, pixel boundaries of the original image) and resets ``crop_flip`` to
False; :class:`CrIBoRandomFlip` toggles ``crop_flip``. Together with the
output size they determine the original-image position of every pixel and
patch of the view (:func:`~cribo_mm.datasets.transforms.geometry.\
patch_centres`), so no per-pixel coordinate map is ever warped.
"""
from typing import Dict, Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from PIL import Image

from cribo_mm.registry import TRANSFORMS
from .geometry import sample_resized_crop

__all__ = ['CrIBoRandomResizedCrop', 'CrIBoRandomFlip', 'resize_crop']

_CV2_INTERP = {
    'nearest': cv2.INTER_NEAREST,
    'bilinear': cv2.INTER_LINEAR,
    'bicubic': cv2.INTER_CUBIC,
    'area': cv2.INTER_AREA,
    'lanczos': cv2.INTER_LANCZOS4,
}
_PIL_INTERP = {
    'nearest': Image.NEAREST,
    'bilinear': Image.BILINEAR,
    'bicubic': Image.BICUBIC,
    'area': Image.BOX,
    'lanczos': Image.LANCZOS,
}


def resize_crop(img: np.ndarray,
                top: int,
                left: int,
                height: int,
                width: int,
                size: Tuple[int, int],
                interpolation: str = 'bicubic',
                backend: str = 'cv2') -> np.ndarray:
    """Crop ``img[top:top+height, left:left+width]`` and resize it.

    Both backends use pixel-centre alignment (``align_corners=False``), so
    output pixel ``u`` samples the crop at ``(u + 0.5) * width / W_out - 0.5``.
    ``'pillow'`` reproduces torchvision's PIL path exactly (antialiased when
    shrinking); ``'cv2'`` is faster and antialiases a strong shrink by first
    area-averaging (``INTER_AREA``) down to at most twice the output size.

    Args:
        img (np.ndarray): Image ``(H, W)`` or ``(H, W, C)``.
        top (int): First row of the crop.
        left (int): First column of the crop.
        height (int): Crop height.
        width (int): Crop width.
        size (tuple[int, int]): Output ``(H_out, W_out)``.
        interpolation (str): 'nearest', 'bilinear', 'bicubic', 'area' or
            'lanczos'. Defaults to 'bicubic'.
        backend (str): 'cv2' or 'pillow'. Defaults to 'cv2'.

    Returns:
        np.ndarray: The resized crop, ``(H_out, W_out[, C])``, input dtype.
    """
    out_h, out_w = size
    crop = img[top:top + height, left:left + width]
    if backend == 'pillow':
        squeeze = crop.ndim == 3 and crop.shape[2] == 1
        pil = Image.fromarray(crop[..., 0] if squeeze else crop)
        out = np.array(pil.resize((out_w, out_h), _PIL_INTERP[interpolation]))
        return out[..., None] if squeeze else out
    if backend != 'cv2':
        raise ValueError(f"backend must be 'cv2' or 'pillow', got {backend}")
    if (height, width) == (out_h, out_w):
        return np.ascontiguousarray(crop)
    if interpolation in ('bilinear', 'bicubic',
                         'lanczos') and (width > 2 * out_w
                                         or height > 2 * out_h):
        # Antialias a strong shrink: area-average down to at most twice the
        # output size first. Area resampling maps pixel edges linearly, so
        # the composed map is still (u + 0.5) * width / W_out - 0.5.
        crop = cv2.resize(
            crop, (min(width, 2 * out_w), min(height, 2 * out_h)),
            interpolation=cv2.INTER_AREA)
    out = cv2.resize(
        crop, (out_w, out_h), interpolation=_CV2_INTERP[interpolation])
    if out.ndim == 2 and img.ndim == 3:
        out = out[..., None]
    return out


@TRANSFORMS.register_module()
class CrIBoRandomResizedCrop(BaseTransform):
    """Random resized crop that records the crop box.

    Sampling follows torchvision's ``RandomResizedCrop`` (area fraction
    uniform in ``scale``, log-uniform aspect ratio in ``ratio``, integer
    boxes, ``max_attempts`` tries then a centred fallback), drawn from
    NumPy's global generator so that mmengine's worker seeding applies.
    Images smaller than ``size`` are simply upsampled.

    It must be the first spatial transform after loading: the box is in the
    pixels of the image it receives, which must be the original image.

    **Required Keys:** ``img``

    **Modified Keys:** ``img``, ``img_shape``

    **Added Keys:** ``crop_bbox`` (np.ndarray float32 (4,),
    ``[x1, y1, x2, y2]``), ``crop_flip`` (bool, False)

    Args:
        size (int | Sequence[int]): Output size, int or ``(h, w)``.
            Defaults to 224.
        scale (Sequence[float]): Range of the crop area fraction.
            Defaults to ``(0.25, 1.0)``.
        ratio (Sequence[float]): Range of the crop aspect ratio (w / h).
            Defaults to ``(3/4, 4/3)``.
        max_attempts (int): Tries before the centred fallback.
            Defaults to 10.
        interpolation (str): Resampling filter. Defaults to 'bicubic'.
        backend (str): 'cv2' (fast) or 'pillow' (pixel-identical to
            torchvision on PIL images). Defaults to 'cv2'.
    """

    def __init__(self,
                 size: Union[int, Sequence[int]] = 224,
                 scale: Sequence[float] = (0.25, 1.0),
                 ratio: Sequence[float] = (3. / 4., 4. / 3.),
                 max_attempts: int = 10,
                 interpolation: str = 'bicubic',
                 backend: str = 'cv2') -> None:
        if isinstance(size, int):
            size = (size, size)
        self.size = tuple(int(s) for s in size)
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f'invalid size {size}')
        if not (0 < scale[0] <= scale[1] and 0 < ratio[0] <= ratio[1]):
            raise ValueError(f'invalid scale {scale} or ratio {ratio}')
        if interpolation not in _CV2_INTERP:
            raise ValueError(f'unknown interpolation {interpolation!r}; '
                             f'choose from {sorted(_CV2_INTERP)}')
        if backend not in ('cv2', 'pillow'):
            raise ValueError(
                f"backend must be 'cv2' or 'pillow', got {backend!r}")
        self.scale = tuple(float(s) for s in scale)
        self.ratio = tuple(float(r) for r in ratio)
        self.max_attempts = int(max_attempts)
        self.interpolation = interpolation
        self.backend = backend

    @cache_randomness
    def get_params(self, height: int, width: int) -> Tuple[int, int, int, int]:
        """Draw ``(top, left, crop_height, crop_width)`` for an image.

        Args:
            height (int): Image height.
            width (int): Image width.

        Returns:
            tuple[int, int, int, int]: torchvision's ``(i, j, h, w)``.
        """
        return sample_resized_crop(
            height,
            width,
            self.scale,
            self.ratio,
            max_attempts=self.max_attempts)

    def transform(self, results: Dict) -> Dict:
        """Crop, resize and record the box.

        Args:
            results (dict): Must contain ``img`` (the original image).

        Returns:
            dict: The updated results.
        """
        img = results['img']
        height, width = img.shape[:2]
        ori = results.get('ori_shape')
        if ori is not None and tuple(ori[:2]) != (height, width):
            raise ValueError(
                f'{self.__class__.__name__} must be the first spatial '
                f'transform: image is {height}x{width} but ori_shape is '
                f'{tuple(ori)}')
        top, left, h, w = self.get_params(height, width)
        results['img'] = resize_crop(img, top, left, h, w, self.size,
                                     self.interpolation, self.backend)
        results['img_shape'] = self.size
        results['crop_bbox'] = np.array([left, top, left + w, top + h],
                                        dtype=np.float32)
        results['crop_flip'] = False
        return results

    def __repr__(self) -> str:
        ratio = tuple(round(r, 4) for r in self.ratio)
        return (f'{self.__class__.__name__}(size={self.size}, '
                f'scale={self.scale}, ratio={ratio}, '
                f'max_attempts={self.max_attempts}, '
                f"interpolation='{self.interpolation}', "
                f"backend='{self.backend}')")


@TRANSFORMS.register_module()
class CrIBoRandomFlip(BaseTransform):
    """Horizontal flip with probability ``prob`` that records the flag.

    **Required Keys:** ``img``

    **Modified Keys:** ``img``, ``crop_flip`` (toggled when flipped; set to
    False first if absent). If no ``crop_bbox`` is present yet, the whole
    image is recorded as the crop box.

    Args:
        prob (float): Flip probability. Defaults to 0.5.
    """

    def __init__(self, prob: float = 0.5) -> None:
        if not 0. <= prob <= 1.:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        self.prob = float(prob)

    @cache_randomness
    def _do_flip(self) -> bool:
        """Draw the flip decision."""
        return bool(np.random.rand() < self.prob)

    def transform(self, results: Dict) -> Dict:
        """Maybe flip ``img`` and record it.

        Args:
            results (dict): Must contain ``img``.

        Returns:
            dict: The updated results.
        """
        img = results['img']
        if 'crop_bbox' not in results:
            h, w = img.shape[:2]
            results['crop_bbox'] = np.array([0, 0, w, h], dtype=np.float32)
        flip = self._do_flip()
        if flip:
            out = cv2.flip(img, 1)
            if out.ndim == 2 and img.ndim == 3:
                out = out[..., None]
            results['img'] = out
        results['crop_flip'] = bool(results.get('crop_flip', False)) ^ flip
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob})'
