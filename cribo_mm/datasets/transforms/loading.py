# Copyright (c) cribo-mm contributors. All rights reserved.
"""Robust image loading: any common mode to 8-bit 3-channel BGR."""
import io
import os
import os.path as osp
import warnings
from typing import Optional, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmengine.logging import print_log
from PIL import Image

from cribo_mm.registry import TRANSFORMS
from ..skipped_files import (SKIP_RECORD_ENV, record_skipped,
                             skipped_in_process)

__all__ = [
    'DEFAULT_MAX_PIXELS', 'ImageTooLargeError', 'UnreadableImageError',
    'decode_image', 'image_size_from_header', 'CrIBoCheckImageSize',
    'CrIBoLoadImageFromFile'
]

#: Default pixel limit (Pillow's ``MAX_IMAGE_PIXELS``, about 9459 x 9459;
#: 256 MiB as 8-bit RGB).
DEFAULT_MAX_PIXELS = 89_478_485


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


class ImageTooLargeError(UnreadableImageError):
    """An image has more pixels than allowed (e.g. a decompression bomb).

    Args:
        filename (str): The offending file.
        width (int): Its width, as given by its header (-1 if unknown).
        height (int): Its height (-1 if unknown).
        max_pixels (int): The limit.
        detail (str): What is known of the size when width and height are
            not. Defaults to ''.
    """

    def __init__(self,
                 filename: str,
                 width: int,
                 height: int,
                 max_pixels: int,
                 detail: str = '') -> None:
        self.width, self.height, self.max_pixels = width, height, max_pixels
        self.detail = detail
        size = (f'{width} x {height} = {width * height} pixels'
                if width >= 0 else detail or 'its size')
        super().__init__(
            filename, f'{size} exceeds the limit of {max_pixels} pixels '
            '(max_pixels of the image loading step; raise it for genuinely '
            'large images)')

    def __reduce__(self):
        return (self.__class__, (self.filename, self.width, self.height,
                                 self.max_pixels, self.detail))


def image_size_from_header(
        source: Union[bytes, str]) -> Optional[Tuple[int, int]]:
    """Width and height of an encoded image, from its header only.

    Pillow parses the header lazily, so nothing is decoded (and from a path
    only the first bytes of the file are read).

    Args:
        source (bytes | str): The encoded file content, or a local path.

    Returns:
        tuple[int, int] | None: ``(width, height)``, or None when Pillow
        does not recognise the format.

    Raises:
        Image.DecompressionBombError: The header announces more than twice
            Pillow's own limit.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(source if isinstance(source, str) else
                            io.BytesIO(source)) as pil:
                return tuple(pil.size)
    except Image.DecompressionBombError:
        raise
    except Exception:  # noqa: BLE001  (unknown or broken header)
        return None


def validate_max_pixels(value: Optional[int], owner: str,
                        allow_none: bool = True) -> Optional[int]:
    """Check a ``max_pixels`` setting.

    Args:
        value (int, optional): The setting.
        owner (str): What it configures, for the error message.
        allow_none (bool): None (no limit) is accepted. Defaults to True.

    Returns:
        int | None: ``value``.

    Raises:
        ValueError: Naming ``owner`` and the value, unless ``value`` is a
            positive int (not a bool) or an accepted None.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        accepted = 'a positive int or None' if allow_none else 'a positive int'
        raise ValueError(
            f'{owner}: max_pixels must be {accepted}, got {value!r}')
    return value


def _check_pixels(source: Union[bytes, str], filename: str,
                  max_pixels: Optional[int]) -> None:
    """Refuse an image whose header (in ``source``: the file content or a
    local path) announces more than ``max_pixels``."""
    if max_pixels is None:
        return
    try:
        size = image_size_from_header(source)
    except Image.DecompressionBombError as e:
        # Pillow refuses to even report sizes above twice its own limit
        if max_pixels <= 2 * (Image.MAX_IMAGE_PIXELS or 0):
            raise ImageTooLargeError(
                filename, -1, -1, max_pixels,
                f'its header size (Pillow: {e})') from None
        return
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageTooLargeError(filename, size[0], size[1], max_pixels)


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


def decode_image(img_bytes: bytes,
                 filename: str = '<bytes>',
                 max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an encoded image into an 8-bit, 3-channel BGR array.

    The pixel count is checked against ``max_pixels`` from the header
    before anything is decoded (a 20000 x 20000 PNG of a few kB would
    otherwise take 1.2 GB); formats that Pillow cannot parse are checked
    after decoding (OpenCV's own limit, 2**30 pixels, bounds them).

    OpenCV decodes first (fast; EXIF orientation is ignored, as Pillow does
    in the reference implementation); Pillow is the fallback. Grayscale is
    replicated to three channels, alpha is dropped, CMYK and palette images
    are converted to RGB, and 16-bit or float images are rescaled to 8 bits.

    Args:
        img_bytes (bytes): The encoded file content.
        filename (str): Name used in error messages.
        max_pixels (int, optional): Largest accepted width x height; None
            disables the check. Defaults to :data:`DEFAULT_MAX_PIXELS`.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 BGR image.

    Raises:
        ImageTooLargeError: If the image has more than ``max_pixels``.
        UnreadableImageError: If the bytes are empty or neither decoder can
            read them.
    """
    if not img_bytes:
        raise UnreadableImageError(filename, 'the file is empty')
    _check_pixels(img_bytes, filename, max_pixels)
    img = None
    try:
        buf = np.frombuffer(img_bytes, np.uint8)
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        img = None
    decoded = None
    if img is not None and img.size > 0:
        try:
            decoded = _channels_to_bgr(_to_uint8(img), 'bgr')
        except ValueError:
            decoded = None
    if decoded is None:
        try:
            decoded = _decode_pillow(img_bytes)
        except Image.UnidentifiedImageError as e:
            raise UnreadableImageError(
                filename, 'not a readable image (unknown format or a '
                'damaged header)') from e
        except Exception as e:  # noqa: BLE001  (any decoder failure)
            raise UnreadableImageError(
                filename,
                f'not a readable image ({type(e).__name__}: {e})') from e
    if decoded.size == 0:
        raise UnreadableImageError(filename, 'the image has no pixels')
    height, width = decoded.shape[:2]
    if max_pixels is not None and height * width > max_pixels:
        raise ImageTooLargeError(filename, width, height, max_pixels)
    return decoded


@TRANSFORMS.register_module()
class CrIBoCheckImageSize(BaseTransform):
    """Refuse an image above a pixel limit from its header, before a loader
    that decodes whatever it is given (mmcv's ``LoadImageFromFile``, used by
    the MMSegmentation datasets: a 20000 x 20000 PNG of a few kB would take
    1.2 GB there). Place it right before that loader.

    **Required Keys:** ``img_path``

    Args:
        max_pixels (int): Largest accepted width x height.
            Defaults to :data:`DEFAULT_MAX_PIXELS`.
        backend_args (dict, optional): mmengine file backend arguments.
            Defaults to None.

    Raises:
        ImageTooLargeError: (when applied) naming the file and its size.
    """

    def __init__(self,
                 max_pixels: int = DEFAULT_MAX_PIXELS,
                 backend_args: Optional[dict] = None) -> None:
        self.max_pixels = validate_max_pixels(
            max_pixels, type(self).__name__, allow_none=False)
        self.backend_args = backend_args.copy() if backend_args else None

    def transform(self, results: dict) -> dict:
        """Check the image named by ``results['img_path']``.

        Args:
            results (dict): Must contain ``img_path``.

        Returns:
            dict: ``results``, unchanged. A file that cannot be read is left
            to the loader that follows, which reports it its own way.
        """
        filename = results['img_path']
        if self.backend_args is None and osp.isfile(filename):
            # a local file: Pillow reads its header, not the whole file
            # (the loader that follows reads it once)
            _check_pixels(filename, filename, self.max_pixels)
            return results
        try:
            img_bytes = fileio.get(filename, backend_args=self.backend_args)
        except Exception:  # noqa: BLE001  (reported by the loader)
            return results
        _check_pixels(img_bytes, filename, self.max_pixels)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(max_pixels={self.max_pixels}, '
                f'backend_args={self.backend_args})')


@TRANSFORMS.register_module()
class CrIBoLoadImageFromFile(BaseTransform):
    """Load an image as 8-bit BGR, converting unusual modes, failing clearly.

    Unlike mmcv's ``LoadImageFromFile`` this converts grayscale, RGBA, CMYK,
    palette, 16-bit and float images to 8-bit 3-channel BGR, refuses images
    with more than ``max_pixels`` pixels from their header (before decoding
    them), and a file that cannot be read raises
    :class:`UnreadableImageError` naming the file.

    With ``skip_unreadable=True`` such a sample is dropped instead (the
    transform returns ``None`` and mmengine's ``BaseDataset`` draws another
    index in training mode). Skipped files are counted once each, whatever
    the number of workers, retries and epochs: in a Runner,
    :class:`~cribo_mm.engine.hooks.CrIBoSkippedImagesHook` (added by
    default) logs one summary per epoch over all workers and ranks (and
    writes the full list to ``<work_dir>/skipped_images.txt``); each process
    also logs its own distinct count at 1, 2, 4, ... files.

    **Required Keys:** ``img_path``

    **Added Keys:** ``img`` (H, W, 3) uint8 BGR, ``img_shape``,
    ``ori_shape`` (both ``(H, W)``).

    Args:
        skip_unreadable (bool): Skip unreadable images instead of raising.
            Defaults to False.
        to_float32 (bool): Return a float32 image. Defaults to False.
        max_pixels (int, optional): Largest accepted width x height; None
            disables the check. Defaults to :data:`DEFAULT_MAX_PIXELS`
            (89.5 M pixels).
        backend_args (dict, optional): mmengine file backend arguments.
            Defaults to None.
    """

    def __init__(self,
                 skip_unreadable: bool = False,
                 to_float32: bool = False,
                 max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                 backend_args: Optional[dict] = None) -> None:
        self.skip_unreadable = skip_unreadable
        self.to_float32 = to_float32
        self.max_pixels = validate_max_pixels(max_pixels, type(self).__name__)
        self.backend_args = backend_args.copy() if backend_args else None

    @staticmethod
    def num_skipped() -> int:
        """Number of distinct files skipped so far by this process."""
        return len(skipped_in_process())

    def _read(self, filename: str) -> np.ndarray:
        """Read and decode ``filename``; all failures become one error."""
        try:
            img_bytes = fileio.get(filename, backend_args=self.backend_args)
        except FileNotFoundError as e:
            raise UnreadableImageError(filename, 'no such file') from e
        except (OSError, ValueError) as e:
            raise UnreadableImageError(filename,
                                       f'{type(e).__name__}: {e}') from e
        return decode_image(img_bytes, filename, self.max_pixels)

    @staticmethod
    def _note_skip(error: UnreadableImageError) -> None:
        """Record a skipped file; log the process's count at powers of 2."""
        if not record_skipped(error.filename, error.reason):
            return
        n = len(skipped_in_process())
        if n & (n - 1) == 0:  # 1, 2, 4, 8, ... to keep logs short
            summary = ('a summary over all workers follows at the end of '
                       'the epoch' if os.environ.get(SKIP_RECORD_ENV) else
                       'add CrIBoSkippedImagesHook to custom_hooks for a '
                       'summary over all workers')
            print_log(
                f'{error}; skipped it ({n} distinct unreadable file(s) '
                f'skipped so far by process {os.getpid()}; {summary}).',
                logger='current',
                level=30)

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
            self._note_skip(e)
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
                f'max_pixels={self.max_pixels}, '
                f'backend_args={self.backend_args})')
