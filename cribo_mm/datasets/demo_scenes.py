# Copyright (c) cribo-mm contributors. All rights reserved.
"""Procedurally generated scene-centric images with per-pixel class masks.

The demo data needs no download. Every image shows several objects of six
categories over a textured background. A category fixes the shape, the
texture and the colour family of its objects, so a good dense representation
separates them. Objects vary in number, scale, aspect, rotation and position
(partly outside the frame), and later objects occlude earlier ones; the mask
records the visible category of every pixel (0 = background).

Generation is vectorised NumPy, written with Pillow, and deterministic: image
``k`` of a split is drawn from its own generator seeded by
``(seed, split, k)``, so the same seed gives identical files. The data set is
generated on first use into a cache folder (see :func:`demo_scenes_root`):
into a temporary folder first, renamed into place when complete, so several
processes may ask for it at once.

Layout of a generated folder::

    <root>/meta.json
    <root>/train/images/00000.jpg   RGB, JPEG quality 95
    <root>/train/labels/00000.png   uint8 class index per pixel
    <root>/val/images/...
    <root>/val/labels/...
"""
import json
import os
import os.path as osp
import shutil
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

__all__ = [
    'DEMO_CLASSES', 'DEMO_PALETTE', 'DEMO_VERSION', 'demo_scenes_root',
    'ensure_demo_scenes', 'generate_demo_scenes', 'render_scene'
]

DEMO_VERSION = 1
DEMO_CLASSES = ('background', 'disc', 'box', 'triangle', 'star', 'ring',
                'cross')
DEMO_PALETTE = [[0, 0, 0], [220, 40, 40], [40, 80, 220], [40, 180, 60],
                [230, 210, 40], [160, 60, 200], [40, 200, 210]]
SPLITS = ('train', 'val')
_SPLIT_CODE = {'train': 0, 'val': 1}

# per category (1..6): hue centre in degrees and texture name
_CATEGORY_STYLE = {
    1: (0., 'shaded'),  # disc: red, spherical shading
    2: (222., 'stripes'),  # box: blue, stripes
    3: (122., 'checker'),  # triangle: green, checkerboard
    4: (55., 'dots'),  # star: yellow, polka dots
    5: (285., 'radial'),  # ring: purple, radial gradient
    6: (185., 'grain'),  # cross: cyan, grainy noise
}

PathLike = Union[str, Path]


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """HSV (hue in degrees, s and v in [0, 1]) to RGB in [0, 255].

    Args:
        h (np.ndarray): Hue in degrees, any shape.
        s (np.ndarray): Saturation in [0, 1], broadcastable to ``h``.
        v (np.ndarray): Value in [0, 1], broadcastable to ``h``.

    Returns:
        np.ndarray: RGB of shape ``h.shape + (3,)`` in [0, 255], float32.
    """
    h = np.asarray(h, np.float32)
    s = np.asarray(s, np.float32)
    v = np.asarray(v, np.float32)
    k = (np.array([5., 3., 1.], np.float32) + (h[..., None] % 360.) / 60.) % 6
    f = v[..., None] - v[..., None] * s[..., None] * np.clip(
        np.minimum(k, 4. - k), 0., 1.)
    return f * 255.


def _smooth_noise(rng: np.random.Generator, shape: Tuple[int, int], cells: int,
                  channels: int) -> np.ndarray:
    """Low-frequency noise: a coarse random grid upsampled bicubically.

    Args:
        rng (np.random.Generator): Random generator.
        shape (tuple[int, int]): Output ``(H, W)``.
        cells (int): Grid cells along the shorter side.
        channels (int): Number of channels.

    Returns:
        np.ndarray: ``(H, W, channels)`` float32, roughly in [-1, 1].
    """
    h, w = shape
    gh = max(2, int(round(cells * h / min(h, w))))
    gw = max(2, int(round(cells * w / min(h, w))))
    grid = rng.uniform(-1., 1., size=(channels, gh, gw)).astype(np.float32)
    out = np.empty((h, w, channels), np.float32)
    for c in range(channels):
        out[..., c] = np.asarray(
            Image.fromarray(grid[c]).resize((w, h), Image.BICUBIC))
    return out


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A textured, low-saturation background (possibly two regions)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)

    def layer():
        hue = rng.uniform(0., 360.)
        base = _hsv_to_rgb(hue, rng.uniform(0.05, 0.35), rng.uniform(0.3, 0.8))
        img = np.broadcast_to(base, (h, w, 3)).astype(np.float32)
        img = img + 35. * _smooth_noise(rng,
                                        (h, w), int(rng.integers(2, 6)), 3)
        kind = int(rng.integers(0, 3))
        if kind == 0:  # wood-like waves
            theta = rng.uniform(0., np.pi)
            period = rng.uniform(10., 40.)
            warp = 6. * _smooth_noise(rng, (h, w), 4, 1)[..., 0]
            phase = (xx * np.cos(theta) + yy * np.sin(theta) + warp)
            img = img + 18. * np.sin(2 * np.pi * phase / period)[..., None]
        elif kind == 1:  # speckle
            img = img + rng.normal(0., 14., size=(h, w, 1)).astype(np.float32)
        else:  # blotches
            img = img + 30. * np.sign(
                _smooth_noise(rng, (h, w), int(rng.integers(6, 14)), 1))
        return img

    img = layer()
    if rng.uniform() < 0.6:  # scene-like split (e.g. wall / floor)
        other = layer()
        slope = rng.uniform(-0.3, 0.3)
        level = rng.uniform(0.3, 0.7) * h
        below = yy > (level + slope * (xx - w / 2.))
        img = np.where(below[..., None], other, img)
    return img


def _shape_mask(category: int, a: np.ndarray, b: np.ndarray,
                aspect: float) -> Tuple[np.ndarray, np.ndarray]:
    """Inside test and polar radius in normalised object coordinates.

    Args:
        category (int): Category index in 1..6.
        a (np.ndarray): Rotated x coordinate divided by the object radius.
        b (np.ndarray): Rotated y coordinate divided by the object radius.
        aspect (float): Height/width factor of elongated shapes.

    Returns:
        tuple[np.ndarray, np.ndarray]: Boolean inside mask and the polar
        radius ``sqrt(a^2 + b^2)``.
    """
    rho = np.sqrt(a * a + b * b)
    if category == 1:  # disc / ellipse
        inside = a * a + (b / aspect)**2 <= 1.
    elif category == 2:  # box
        inside = (np.abs(a) <= 0.85) & (np.abs(b) <= 0.85 * aspect)
    elif category == 3:  # equilateral triangle, apex at b = -1
        s3 = np.sqrt(3.)
        inside = (b <= 0.5) & (s3 * a - b <= 1.) & (-s3 * a - b <= 1.)
    elif category == 4:  # five-pointed star
        phi = np.arctan2(b, a)
        t = (phi * 5. / (2. * np.pi)) % 1.
        radius = 0.42 + 0.58 * np.abs(1. - 2. * t)
        inside = rho <= radius
    elif category == 5:  # ring
        inside = (rho <= 1.) & (rho >= 0.55)
    elif category == 6:  # plus-shaped cross
        arm = 0.32
        inside = ((np.abs(a) <= arm) &
                  (np.abs(b) <= 1.)) | ((np.abs(b) <= arm) & (np.abs(a) <= 1.))
    else:
        raise ValueError(f'unknown category {category}')
    return inside, rho


def _texture(rng: np.random.Generator, kind: str, a: np.ndarray, b: np.ndarray,
             rho: np.ndarray, radius: float) -> np.ndarray:
    """Texture mixing weight in [0, 1] over the object's local grid."""
    if kind == 'shaded':
        return 1. - np.sqrt(np.clip(1. - rho * rho, 0., 1.))
    if kind == 'stripes':
        period = rng.uniform(6., 11.)
        return (np.sin(2. * np.pi * a * radius / period)
                > 0).astype(np.float32)
    if kind == 'checker':
        period = rng.uniform(7., 12.)
        return (
            (np.floor(a * radius / period) + np.floor(b * radius / period)) %
            2).astype(np.float32)
    if kind == 'dots':
        period = rng.uniform(7., 11.)
        da = (a * radius) % period - period / 2.
        db = (b * radius) % period - period / 2.
        return (da * da + db * db < (0.3 * period)**2).astype(np.float32)
    if kind == 'radial':
        return np.clip((rho - 0.55) / 0.45, 0., 1.)
    if kind == 'grain':
        return rng.uniform(0., 1., size=a.shape).astype(np.float32)
    raise ValueError(f'unknown texture {kind}')


def render_scene(
    rng: np.random.Generator,
    image_size: Tuple[int, int] = (256, 256),
    num_objects: Tuple[int, int] = (4, 10),
    radius_range: Tuple[float, float] = (0.07, 0.28)
) -> Tuple[np.ndarray, np.ndarray]:
    """Render one scene and its class mask.

    Args:
        rng (np.random.Generator): Random generator (consumed).
        image_size (tuple[int, int]): ``(H, W)``. Defaults to (256, 256).
        num_objects (tuple[int, int]): Inclusive range of the number of
            objects. Defaults to (4, 10).
        radius_range (tuple[float, float]): Range of the object radius as a
            fraction of ``min(H, W)``, sampled log-uniformly. Defaults to
            (0.07, 0.28).

    Returns:
        tuple[np.ndarray, np.ndarray]: RGB image ``(H, W, 3)`` uint8 and
        class mask ``(H, W)`` uint8 with values in ``0..6``.
    """
    h, w = image_size
    img = _background(rng, h, w)
    mask = np.zeros((h, w), np.uint8)
    short = min(h, w)
    n = int(rng.integers(num_objects[0], num_objects[1] + 1))
    for _ in range(n):
        category = int(rng.integers(1, len(DEMO_CLASSES)))
        hue_c, tex = _CATEGORY_STYLE[category]
        radius = float(
            np.exp(
                rng.uniform(
                    np.log(radius_range[0] * short),
                    np.log(radius_range[1] * short))))
        cx, cy = rng.uniform(-0.1 * w, 1.1 * w), rng.uniform(-0.1 * h, 1.1 * h)
        theta = rng.uniform(0., 2. * np.pi)
        aspect = rng.uniform(0.7, 1.0)
        ext = 1.25 * radius  # boxes reach 0.85 * sqrt(2) radii
        x0, x1 = int(max(0,
                         np.floor(cx -
                                  ext))), int(min(w,
                                                  np.ceil(cx + ext) + 1))
        y0, y1 = int(max(0,
                         np.floor(cy -
                                  ext))), int(min(h,
                                                  np.ceil(cy + ext) + 1))
        if x1 <= x0 or y1 <= y0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dx, dy = xx - cx, yy - cy
        ct, st = np.cos(theta), np.sin(theta)
        a = (ct * dx + st * dy) / radius
        b = (-st * dx + ct * dy) / radius
        inside, rho = _shape_mask(category, a, b, aspect)
        if not inside.any():
            continue
        hue = hue_c + rng.uniform(-12., 12.)
        sat, val = rng.uniform(0.55, 0.95), rng.uniform(0.6, 0.95)
        col1 = _hsv_to_rgb(hue, sat, val)
        col2 = _hsv_to_rgb(hue + rng.uniform(-8., 8.), sat * 0.9, val * 0.5)
        t = _texture(rng, tex, a, b, rho, radius)[..., None]
        patch = col1 * (1. - t) + col2 * t
        region = img[y0:y1, x0:x1]
        region[inside] = patch[inside]
        mask[y0:y1, x0:x1][inside] = category
    # global illumination gradient and sensor noise
    light = 1. + 0.15 * _smooth_noise(rng, (h, w), 2, 1)
    img = img * light + rng.normal(0., 3., size=(h, w, 3)).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), mask


def demo_scenes_root(seed: int = 0,
                     num_train: int = 256,
                     num_val: int = 64,
                     image_size: Tuple[int, int] = (256, 256),
                     cache_root: Optional[PathLike] = None) -> Path:
    """Folder that holds (or will hold) a demo data set.

    Args:
        seed (int): Generation seed. Defaults to 0.
        num_train (int): Number of training images. Defaults to 256.
        num_val (int): Number of validation images. Defaults to 64.
        image_size (tuple[int, int]): ``(H, W)``. Defaults to (256, 256).
        cache_root (str | Path, optional): Parent folder of all demo data
            sets. Defaults to ``$CRIBO_DEMO_ROOT`` if set, else
            ``~/.cache/cribo_mm/demo_scenes``.

    Returns:
        Path: ``<cache_root>/v<version>-seed<seed>-<H>x<W>-<train>+<val>``.
    """
    if cache_root is None:
        cache_root = os.environ.get('CRIBO_DEMO_ROOT') or osp.join(
            osp.expanduser('~'), '.cache', 'cribo_mm', 'demo_scenes')
    h, w = image_size
    name = (f'v{DEMO_VERSION}-seed{seed}-{h}x{w}-{num_train}+{num_val}')
    return Path(cache_root) / name


def generate_demo_scenes(out_dir: PathLike,
                         seed: int = 0,
                         num_train: int = 256,
                         num_val: int = 64,
                         image_size: Tuple[int, int] = (256, 256),
                         splits: Sequence[str] = SPLITS) -> Dict:
    """Write a demo data set into ``out_dir`` (no atomicity, no caching).

    Args:
        out_dir (str | Path): Destination folder (created).
        seed (int): Generation seed. Defaults to 0.
        num_train (int): Number of training images. Defaults to 256.
        num_val (int): Number of validation images. Defaults to 64.
        image_size (tuple[int, int]): ``(H, W)``. Defaults to (256, 256).
        splits (Sequence[str]): Splits to write. Defaults to both.

    Returns:
        dict: The metadata written to ``meta.json``.
    """
    out_dir = Path(out_dir)
    counts = {'train': num_train, 'val': num_val}
    for split in splits:
        (out_dir / split / 'images').mkdir(parents=True, exist_ok=True)
        (out_dir / split / 'labels').mkdir(parents=True, exist_ok=True)
        for k in range(counts[split]):
            rng = np.random.default_rng([seed, _SPLIT_CODE[split], k])
            img, mask = render_scene(rng, tuple(image_size))
            Image.fromarray(img).save(
                out_dir / split / 'images' / f'{k:05d}.jpg',
                quality=95,
                subsampling=0)
            Image.fromarray(mask).save(out_dir / split / 'labels' /
                                       f'{k:05d}.png')
    meta = dict(
        version=DEMO_VERSION,
        seed=seed,
        image_size=list(image_size),
        num_train=num_train,
        num_val=num_val,
        classes=list(DEMO_CLASSES),
        palette=DEMO_PALETTE)
    with open(out_dir / 'meta.json', 'w') as f:
        json.dump(meta, f, indent=1)
    return meta


def ensure_demo_scenes(root: Optional[PathLike] = None,
                       seed: int = 0,
                       num_train: int = 256,
                       num_val: int = 64,
                       image_size: Tuple[int, int] = (256, 256),
                       cache_root: Optional[PathLike] = None) -> Path:
    """Return a complete demo data set folder, generating it if needed.

    Generation goes to a temporary sibling folder that is renamed into place
    once complete; a process that loses the race discards its copy. A folder
    is complete when it has ``meta.json``.

    Args:
        root (str | Path, optional): Exact folder to use. Defaults to
            :func:`demo_scenes_root` of the other arguments.
        seed (int): Generation seed. Defaults to 0.
        num_train (int): Number of training images. Defaults to 256.
        num_val (int): Number of validation images. Defaults to 64.
        image_size (tuple[int, int]): ``(H, W)``. Defaults to (256, 256).
        cache_root (str | Path, optional): See :func:`demo_scenes_root`.

    Returns:
        Path: The folder with ``meta.json``, ``train/`` and ``val/``.
    """
    image_size = tuple(int(s) for s in image_size)
    root = Path(root) if root is not None else demo_scenes_root(
        seed, num_train, num_val, image_size, cache_root)
    if (root / 'meta.json').is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{root.name}.tmp-', dir=root.parent))
    try:
        start = time.perf_counter()
        generate_demo_scenes(tmp, seed, num_train, num_val, image_size)
        try:
            os.rename(tmp, root)
        except OSError:
            if not (root / 'meta.json').is_file():
                raise
        else:
            from mmengine.logging import print_log
            print_log(
                f'Generated demo scenes ({num_train}+{num_val} images) in '
                f'{root} in {time.perf_counter() - start:.1f} s',
                logger='current')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
