# Copyright (c) cribo-mm contributors. All rights reserved.
"""Procedurally generated scene-centric images with per-pixel class masks.

The demo data needs no download. Every image shows several objects of six
categories over an untextured background with clutter (untextured blobs,
background class). A category fixes the shape and the texture of its objects
(stripes, checkerboard, dots, concentric rings, zigzag, grain); colours are
drawn per object from the whole colour wheel, background and clutter from
the same distribution, so colour says nothing about the class: a dense
representation must tell textures and shapes apart, and the colour
augmentations of self-supervised training do not remove the cue. Objects
vary in number, scale, aspect, rotation and position (partly outside the
frame), and later objects occlude earlier ones; the mask records the visible
category of every pixel (0 = background). Version 1 of the generator (until
``DEMO_VERSION`` 2) gave each category a colour family instead; its caches
are not reused (the version is part of the cache folder name).

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
import functools
import hashlib
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
    'CATEGORY_TEXTURES', 'DEMO_CLASSES', 'DEMO_PALETTE', 'DEMO_VERSION',
    'demo_scenes_root',
    'ensure_demo_scenes', 'generate_demo_scenes', 'render_scene'
]

DEMO_VERSION = 2
DEMO_CLASSES = ('background', 'disc', 'box', 'triangle', 'star', 'ring',
                'cross')
DEMO_PALETTE = [[0, 0, 0], [220, 40, 40], [40, 80, 220], [40, 180, 60],
                [230, 210, 40], [160, 60, 200], [40, 200, 210]]
SPLITS = ('train', 'val')
_SPLIT_CODE = {'train': 0, 'val': 1}

#: Texture of each category (1..6). Colours are drawn per object from the
#: whole colour wheel, so only shape and texture tell the categories apart.
CATEGORY_TEXTURES = {
    1: 'stripes',  # disc
    2: 'checker',  # box
    3: 'dots',  # triangle
    4: 'rings',  # star: concentric rings around the object centre
    5: 'zigzag',  # ring
    6: 'grain',  # cross: fine random grain
}
#: Image side for which the texture periods are given; they scale with
#: ``min(H, W) / _REF_SIDE`` but not below ``_MIN_SCALE`` (at 128 px and
#: below, a period of 5 px or more stays resolved by 8-px patches).
_REF_SIDE = 256.
_MIN_SCALE = 0.75

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


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """Any hue, saturation 0-1, value 0.25-1: RGB (3,) float32."""
    return _hsv_to_rgb(
        rng.uniform(0., 360.), rng.uniform(0., 1.), rng.uniform(0.25, 1.))


def _colour_pair(rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Two random colours that differ enough for a texture to be visible.

    Returns:
        tuple[np.ndarray, np.ndarray]: RGB (3,) float32 each, at least 60
        apart (Euclidean, 0-255 scale).
    """
    first = _random_colour(rng)
    for _ in range(20):
        second = _random_colour(rng)
        if np.linalg.norm(first - second) >= 60.:
            break
    else:  # very unlikely: make it lighter or darker instead
        second = np.where(first.mean() > 127., first * 0.4, first * 0.4 + 150.)
    return first, second.astype(np.float32)


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
    """Untextured background: smooth blotches of two random colours.

    Its colours come from the same distribution as the objects', so only
    the absence of a fine periodic texture marks it.
    """
    first, second = _colour_pair(rng)
    weight = 0.5 + 0.5 * _smooth_noise(rng, (h, w), int(rng.integers(2, 5)),
                                       1)
    weight = np.clip(weight, 0., 1.)
    img = first * (1. - weight) + second * weight
    return img + 12. * _smooth_noise(rng, (h, w), 8, 3)


def _clutter(rng: np.random.Generator, img: np.ndarray, count: int,
             short: int) -> None:
    """Paint untextured blobs (ellipses, background class) in place.

    Args:
        rng (np.random.Generator): Random generator.
        img (np.ndarray): (H, W, 3) float32 image, modified.
        count (int): Number of blobs.
        short (int): Shorter image side.
    """
    h, w = img.shape[:2]
    for _ in range(count):
        radius = rng.uniform(0.03, 0.12) * short
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        ext = int(np.ceil(radius)) + 1
        x0, x1 = max(0, int(cx) - ext), min(w, int(cx) + ext + 1)
        y0, y1 = max(0, int(cy) - ext), min(h, int(cy) + ext + 1)
        if x1 <= x0 or y1 <= y0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        aspect = rng.uniform(0.4, 1.)
        theta = rng.uniform(0., np.pi)
        dx, dy = xx - cx, yy - cy
        a = (np.cos(theta) * dx + np.sin(theta) * dy) / radius
        b = (-np.sin(theta) * dx + np.cos(theta) * dy) / (radius * aspect)
        rho2 = a * a + b * b
        inside = rho2 <= 1.
        shade = (1. - 0.35 * rho2)[..., None]  # soft, untextured
        colour = _random_colour(rng)
        region = img[y0:y1, x0:x1]
        region[inside] = (colour * shade)[inside]


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
        inside = (rho <= 1.) & (rho >= 0.5)
    elif category == 6:  # plus-shaped cross
        arm = 0.34
        inside = ((np.abs(a) <= arm) &
                  (np.abs(b) <= 1.)) | ((np.abs(b) <= arm) & (np.abs(a) <= 1.))
    else:
        raise ValueError(f'unknown category {category}')
    return inside, rho


def _texture(rng: np.random.Generator, kind: str, a: np.ndarray, b: np.ndarray,
             rho: np.ndarray, radius: float, scale: float) -> np.ndarray:
    """Texture mixing weight in [0, 1] over the object's local grid.

    Args:
        rng (np.random.Generator): Random generator.
        kind (str): One of :data:`CATEGORY_TEXTURES`' values.
        a (np.ndarray): Rotated x coordinate / radius.
        b (np.ndarray): Rotated y coordinate / radius.
        rho (np.ndarray): ``sqrt(a^2 + b^2)``.
        radius (float): Object radius in pixels.
        scale (float): Scale of the periods (1 for 256-px images).

    Returns:
        np.ndarray: Weight of the second colour, same shape as ``a``.
    """
    x, y = a * radius, b * radius  # pixels, object frame
    if kind == 'stripes':
        period = rng.uniform(7., 11.) * scale
        return (np.sin(2. * np.pi * x / period) > 0).astype(np.float32)
    if kind == 'checker':
        period = rng.uniform(8., 12.) * scale
        return ((np.floor(x / period) + np.floor(y / period)) %
                2).astype(np.float32)
    if kind == 'dots':
        period = rng.uniform(8., 12.) * scale
        dx = x % period - period / 2.
        dy = y % period - period / 2.
        return (dx * dx + dy * dy < (0.3 * period)**2).astype(np.float32)
    if kind == 'rings':
        period = rng.uniform(7., 11.) * scale
        return (np.sin(2. * np.pi * rho * radius / period) >
                0).astype(np.float32)
    if kind == 'zigzag':
        period = rng.uniform(9., 13.) * scale
        tri = np.abs((x / period) % 2. - 1.)  # triangle wave in [0, 1]
        return (np.sin(2. * np.pi * (y + 0.6 * period * tri) / period) >
                0).astype(np.float32)
    if kind == 'grain':
        cell = max(1, int(round(2 * scale)))
        noise = rng.uniform(0., 1., size=(int(np.ceil(a.shape[0] / cell)),
                                          int(np.ceil(a.shape[1] / cell))))
        noise = np.repeat(np.repeat(noise, cell, 0), cell, 1)
        return (noise[:a.shape[0], :a.shape[1]] > 0.5).astype(np.float32)
    raise ValueError(f'unknown texture {kind}')


def render_scene(
    rng: np.random.Generator,
    image_size: Tuple[int, int] = (256, 256),
    num_objects: Tuple[int, int] = (4, 8),
    radius_range: Tuple[float, float] = (0.1, 0.3),
    num_clutter: Tuple[int, int] = (2, 6)
) -> Tuple[np.ndarray, np.ndarray]:
    """Render one scene and its class mask.

    The background and the clutter (untextured blobs, background class)
    are painted first, then the objects, later ones occluding earlier ones.
    Every object draws its own two colours from the whole colour wheel and
    its own position, radius, rotation and aspect; its category fixes its
    shape and its texture (:data:`CATEGORY_TEXTURES`). A global
    illumination gradient and sensor noise finish the picture.

    Args:
        rng (np.random.Generator): Random generator (consumed).
        image_size (tuple[int, int]): ``(H, W)``. Defaults to (256, 256).
        num_objects (tuple[int, int]): Inclusive range of the number of
            objects. Defaults to (4, 8).
        radius_range (tuple[float, float]): Range of the object radius as a
            fraction of ``min(H, W)``, sampled log-uniformly. Defaults to
            (0.1, 0.3).
        num_clutter (tuple[int, int]): Inclusive range of the number of
            clutter blobs. Defaults to (2, 6).

    Returns:
        tuple[np.ndarray, np.ndarray]: RGB image ``(H, W, 3)`` uint8 and
        class mask ``(H, W)`` uint8 with values in ``0..6``.
    """
    h, w = image_size
    short = min(h, w)
    scale = max(short / _REF_SIDE, _MIN_SCALE)
    img = _background(rng, h, w)
    _clutter(rng, img,
             int(rng.integers(num_clutter[0], num_clutter[1] + 1)), short)
    mask = np.zeros((h, w), np.uint8)
    n = int(rng.integers(num_objects[0], num_objects[1] + 1))
    for _ in range(n):
        category = int(rng.integers(1, len(DEMO_CLASSES)))
        radius = float(
            np.exp(
                rng.uniform(
                    np.log(radius_range[0] * short),
                    np.log(radius_range[1] * short))))
        cx, cy = rng.uniform(-0.1 * w, 1.1 * w), rng.uniform(-0.1 * h, 1.1 * h)
        theta = rng.uniform(0., 2. * np.pi)
        aspect = rng.uniform(0.7, 1.0)
        col1, col2 = _colour_pair(rng)
        ext = 1.25 * radius  # boxes reach 0.85 * sqrt(2) radii
        x0 = int(max(0, np.floor(cx - ext)))
        x1 = int(min(w, np.ceil(cx + ext) + 1))
        y0 = int(max(0, np.floor(cy - ext)))
        y1 = int(min(h, np.ceil(cy + ext) + 1))
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
        t = _texture(rng, CATEGORY_TEXTURES[category], a, b, rho, radius,
                     scale)[..., None]
        patch = col1 * (1. - t) + col2 * t
        region = img[y0:y1, x0:x1]
        region[inside] = patch[inside]
        mask[y0:y1, x0:x1][inside] = category
    # global illumination gradient and sensor noise
    light = 1. + 0.15 * _smooth_noise(rng, (h, w), 2, 1)
    img *= light
    img += 3. * rng.standard_normal(size=(h, w, 3), dtype=np.float32)
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
        Path: ``<cache_root>/v<version>-<fingerprint>-seed<seed>-<H>x<W>-
        <train>+<val>``; the fingerprint (:func:`generator_fingerprint`)
        changes with what the generator draws, so a cache made by another
        version of the generator is never reused.
    """
    if cache_root is None:
        cache_root = os.environ.get('CRIBO_DEMO_ROOT') or osp.join(
            osp.expanduser('~'), '.cache', 'cribo_mm', 'demo_scenes')
    h, w = image_size
    name = (f'v{DEMO_VERSION}-{generator_fingerprint()}-seed{seed}-{h}x{w}-'
            f'{num_train}+{num_val}')
    return Path(cache_root) / name


@functools.lru_cache(maxsize=None)
def generator_fingerprint() -> str:
    """Eight hex digits of a hash of a small probe scene.

    Any change of the generator that changes its images (object counts,
    sizes, textures, colours) changes the probe and with it the cache
    folder; ``DEMO_VERSION`` alone was not bumped by such changes once,
    and a stale cache of the same name was reused.

    Returns:
        str: The fingerprint.
    """
    img, mask = render_scene(np.random.default_rng([0, 9, 0]), (64, 64))
    digest = hashlib.sha1(img.tobytes() + mask.tobytes()).hexdigest()
    return digest[:8]


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
        generator=generator_fingerprint(),
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
