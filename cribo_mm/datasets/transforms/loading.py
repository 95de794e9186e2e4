# Copyright (c) cribo-mm contributors. All rights reserved.
"""Robust image loading: any common mode to 8-bit 3-channel BGR."""
import io
import os
from typing import Optional

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmengine.logging import print_log
from PIL import Image

from cribo_mm.registry import TRANSFORMS

__all__ = ['UnreadableImageError', 'decode_image', 'CrIBoLoadImageFromFile']


class UnreadableImageError(RuntimeError):
    """An image file is missing, empty, truncated or in an unknown format.

    Args:
        filename (str): The offending file.
        reason (str): What went wrong.
    """

    def __init__(self, filename: str, reason: str) -> None:
        self.filename = filename
        self.reason = reason
        super().__init__(f'Cannot read image file {filename!r}: {reason}')

    def __reduce__(self):
        # keep the two-argument signature picklable across worker processes
        return (self.__class__, (self.filename, self.reason))


def _to_uint8(img: np.ndarray) -> np.ndarray:
    """Rescale a 16-bit, 32-bit integer or float image to uint8."""
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        # 0..65535 -> 0..255 with rounding (65535 / 257 = 255)
        return ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if img.dtype == np.bool_:
        return img.astype(np.uint8) * 255
    if np.issubdtype(img.dtype, np.integer):
        hi = float(img.max()) if img.size else 0.
        scale = 255. / 65535. if hi > 255 else 1.
        return np.clip(np.rint(img * scale), 0, 255).astype(np.uint8)
    img = np.nan_to_num(img.astype(np.float32))
    if img.size and img.max() <= 1.:
        img = img * 255.
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _channels_to_bgr(img: np.ndarray, order: str) -> np.ndarray:
    """Gray, gray+alpha, RGB(A)/BGR(A) to 3-channel BGR (alpha dropped)."""
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.ndim != 3:
        raise ValueError(f'unexpected array shape {img.shape}')
    c = img.shape[2]
    if c == 1 or c == 2:
        return cv2.cvtColor(
            np.ascontiguousarray(img[..., 0]), cv2.COLOR_GRAY2BGR)
    img = img[..., :3]
    if order == 'rgb':
        img = img[..., ::-1]
    return np.ascontiguousarray(img)


def _decode_pillow(img_bytes: bytes) -> np.ndarray:
    """Decode with Pillow (fallback for what OpenCV cannot read)."""
    with Image.open(io.BytesIO(img_bytes)) as pil:
        pil.load()
        if pil.mode in ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I', 'F'):
            arr = np.asarray(pil)
            if pil.mode.startswith('I;16'):
                arr = arr.astype(np.uint16)
            return _channels_to_bgr(_to_uint8(arr), 'rgb')
        if pil.mode != 'RGB':
            # CMYK, YCbCr, LAB, HSV, P, PA, L, LA, 1, RGBA, ...
            pil = pil.convert(
                'RGBA' if 'A' in pil.mode or pil.mode == 'P' else 'RGB')
        return _channels_to_bgr(np.asarray(pil), 'rgb')


def decode_image(img_bytes: bytes, filename: str = '<bytes>') -> np.ndarray:
    """Decode an encoded image into an 8-bit, 3-channel BGR array.

    OpenCV decodes first (fast; EXIF orientation is ignored, as Pillow does
    in the reference implementation); Pillow is the fallback. Grayscale is
    replicated to three channels, alpha is dropped, CMYK and palette images
    are converted to RGB, and 16-bit or float images are rescaled to 8 bits.

    Args:
        img_bytes (bytes): The encoded file content.
        filename (str): Name used in error messages.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 BGR image.

    Raises:
        UnreadableImageError: If the bytes are empty or neither decoder can
            read them.
    """
    if not img_bytes:
        raise UnreadableImageError(filename, 'the file is empty')
    img = None
    try:
        buf = np.frombuffer(img_bytes, np.uint8)
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        img = None
    if img is not None and img.size > 0:
        try:
            return _channels_to_bgr(_to_uint8(img), 'bgr')
        except ValueError:
            pass
    try:
        img = _decode_pillow(img_bytes)
    except Exception as e:  # noqa: BLE001  (any decoder failure)
        raise UnreadableImageError(
            filename, f'not a readable image ({type(e).__name__}: {e})') from e
    if img.size == 0:
        raise UnreadableImageError(filename, 'the image has no pixels')
    return img


@TRANSFORMS.register_module()
class CrIBoLoadImageFromFile(BaseTransform):
    """Load an image as 8-bit BGR, converting unusual modes, failing clearly.

    Unlike mmcv's ``LoadImageFromFile`` this converts grayscale, RGBA, CMYK,
    palette, 16-bit and float images to 8-bit 3-channel BGR, and a file that
    cannot be read raises :class:`UnreadableImageError` naming the file. With
    ``skip_unreadable=True`` such a sample is dropped instead (the transform
    returns ``None`` and mmengine's ``BaseDataset`` draws another index in
    training mode) and the skips are counted in a warning.

    **Required Keys:** ``img_path``

    **Added Keys:** ``img`` (H, W, 3) uint8 BGR, ``img_shape``,
    ``ori_shape`` (both ``(H, W)``).

    Args:
        skip_unreadable (bool): Skip unreadable images instead of raising.
            Defaults to False.
        to_float32 (bool): Return a float32 image. Defaults to False.
        backend_args (dict, optional): mmengine file backend arguments.
            Defaults to None.
    """

    #: number of images this process has skipped (all instances)
    num_skipped = 0

    def __init__(self,
                 skip_unreadable: bool = False,
                 to_float32: bool = False,
                 backend_args: Optional[dict] = None) -> None:
        self.skip_unreadable = skip_unreadable
        self.to_float32 = to_float32
        self.backend_args = backend_args.copy() if backend_args else None

    def _read(self, filename: str) -> np.ndarray:
        """Read and decode ``filename``; all failures become one error."""
        try:
            img_bytes = fileio.get(filename, backend_args=self.backend_args)
        except FileNotFoundError as e:
            raise UnreadableImageError(filename, 'no such file') from e
        except (OSError, ValueError) as e:
            raise UnreadableImageError(filename,
                                       f'{type(e).__name__}: {e}') from e
        return decode_image(img_bytes, filename)

    def transform(self, results: dict) -> Optional[dict]:
        """Load the image named by ``results['img_path']``.

        Args:
            results (dict): Must contain ``img_path``.

        Returns:
            dict | None: ``results`` with the image, or None when the image
            is unreadable and ``skip_unreadable`` is set.
        """
        filename = results['img_path']
        try:
            img = self._read(filename)
        except UnreadableImageError as e:
            if not self.skip_unreadable:
                raise
            cls = type(self)
            cls.num_skipped += 1
            n = cls.num_skipped
            if n & (n - 1) == 0:  # 1, 2, 4, 8, ... to keep logs short
                print_log(
                    f'{e}; skipped it ({n} unreadable image(s) skipped so '
                    f'far in process {os.getpid()}).',
                    logger='current',
                    level=30)
            return None
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f'skip_unreadable={self.skip_unreadable}, '
                f'to_float32={self.to_float32}, '
                f'backend_args={self.backend_args})')
