# Copyright (c) cribo-mm contributors. All rights reserved.
"""Two-view CrIBo samples per second on one CPU core.

Compares the cribo-mm pipeline (``configs/_base_/datasets/cribo_pipeline.py``:
cv2 crops that record their box, mmpretrain/mmcv photometric transforms,
analytic patch centres) with a baseline written the way the reference
implementation works: PIL + torchvision transforms, with a per-pixel
position map cropped, resized (bicubic) and flipped together with each view
and averaged over every 16x16 patch, then ToTensor + Normalize on the CPU.

Both produce, per image, two 224x224 views and the original-image position
of all 2 x 196 patch tokens. ``ours`` leaves the views as uint8 (the model's
data preprocessor normalises them on the accelerator); ``ours+norm`` also
normalises on the CPU, for a like-for-like comparison.

Usage::

    python benchmarks/data_pipeline.py [--samples 300] [--repeats 3]
        [--data-dir DIR_OF_JPEGS] [--json out.json]

Without ``--data-dir`` it writes 640x480 JPEGs of procedurally generated
scenes (quality 90) into a temporary folder.
"""
import os

# one core: set before numpy / torch / cv2 start their thread pools
for _var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS'):
    os.environ[_var] = '1'

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image, ImageFilter, ImageOps  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def pin_one_core() -> str:
    """Restrict this process to one CPU core and one thread everywhere."""
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    cv2.setNumThreads(1)
    core = 'unpinned'
    if hasattr(os, 'sched_setaffinity'):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[-1]})
        core = f'core {cpus[-1]}'
    return core


def make_images(folder: Path, n: int, h: int, w: int, seed: int):
    """Write ``n`` scene-like ``h`` x ``w`` JPEGs (quality 90)."""
    from cribo_mm.datasets.demo_scenes import render_scene
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        rng = np.random.default_rng([seed, 99, k])
        img, _ = render_scene(rng, (h, w))
        p = folder / f'{k:04d}.jpg'
        Image.fromarray(img).save(p, quality=90)
        paths.append(str(p))
    return paths


# --------------------------------------------------------------- baseline
class _Blur:
    """DINO-style PIL Gaussian blur with a random radius."""

    def __init__(self, p, lo=0.1, hi=2.0):
        self.p, self.lo, self.hi = p, lo, hi

    def __call__(self, img):
        if random.random() >= self.p:
            return img
        return img.filter(
            ImageFilter.GaussianBlur(radius=random.uniform(self.lo, self.hi)))


class _Solarize:

    def __init__(self, p):
        self.p = p

    def __call__(self, img):
        return ImageOps.solarize(img) if random.random() < self.p else img


class ReferenceStylePipeline:
    """Baseline: torchvision/PIL views with a warped per-pixel position map.

    Args:
        size (int): View size. Defaults to 224.
        patch (int): Patch size. Defaults to 16.
        max_side (int): Side of the precomputed position grid (the reference
            slices one large grid for every image). Defaults to 2000.
    """

    def __init__(self, size=224, patch=16, max_side=2000):
        import torchvision.transforms as T
        import torchvision.transforms.functional as TF
        self.T, self.TF = T, TF
        self.size, self.patch = size, patch
        ys, xs = torch.meshgrid(
            torch.arange(max_side, dtype=torch.float32),
            torch.arange(max_side, dtype=torch.float32),
            indexing='ij')
        self.grid = torch.stack([xs, ys])  # (2, max, max): x, y
        color = [
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
        ]
        norm = [T.ToTensor(), T.Normalize(MEAN, STD)]
        self.photo = [
            T.Compose(color + [_Blur(1.0)] + norm),
            T.Compose(color + [_Blur(0.1), _Solarize(0.2)] + norm),
        ]
        self.rrc = T.RandomResizedCrop(
            size, scale=(0.25, 1.0), interpolation=T.InterpolationMode.BICUBIC)

    def __call__(self, path):
        """Return ([view1, view2], positions (2, 2, n))."""
        TF, T = self.TF, self.T
        img = Image.open(path).convert('RGB')
        w, h = img.size
        pos_map = self.grid[:, :h, :w]
        views, positions = [], []
        for photo in self.photo:
            i, j, ch, cw = self.rrc.get_params(img, self.rrc.scale,
                                               self.rrc.ratio)
            view = TF.resized_crop(img, i, j, ch, cw, [self.size] * 2,
                                   T.InterpolationMode.BICUBIC)
            pos = TF.resized_crop(pos_map, i, j, ch, cw, [self.size] * 2,
                                  T.InterpolationMode.BICUBIC)
            if random.random() < 0.5:
                view, pos = TF.hflip(view), TF.hflip(pos)
            views.append(photo(view))
            positions.append(F.avg_pool2d(pos[None], self.patch)[0].flatten(1))
        return views, torch.stack(positions)


# -------------------------------------------------------------------- ours
class OursPipeline:
    """cribo-mm: the training pipeline of the config + analytic centres.

    Args:
        normalize (bool): Also convert the views to normalised float on the
            CPU (normally the model's data preprocessor does it).
    """

    def __init__(self, normalize=False):
        from mmengine.config import Config
        from mmengine.dataset import Compose
        from mmengine.registry import init_default_scope

        import cribo_mm.datasets  # noqa: F401
        from cribo_mm.datasets.transforms import patch_centres
        init_default_scope('mmpretrain')
        cfg = Config.fromfile(
            str(ROOT / 'configs/_base_/datasets/cribo_pipeline.py'))
        self.pipeline = Compose(cfg.train_pipeline)
        self.patch_centres = patch_centres
        self.normalize = normalize
        # BGR order, as the views are
        self.mean = torch.tensor(MEAN[::-1]).view(3, 1, 1) * 255
        self.std = torch.tensor(STD[::-1]).view(3, 1, 1) * 255

    def __call__(self, path):
        """Return ([view1, view2], positions (2, 2, n))."""
        out = self.pipeline(dict(img_path=path, sample_idx=0))
        ds = out['data_samples']
        views = out['inputs']
        if self.normalize:
            views = [((v.float() - self.mean) / self.std).flip(0)
                     for v in views]
        return views, self.patch_centres(ds.crop_bbox, ds.crop_flip)


def geometry_only(paths, n):
    """Per-view time of positions alone: map warp vs closed form."""
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    from cribo_mm.datasets.transforms import patch_centres
    from cribo_mm.datasets.transforms.geometry import sample_resized_crop
    h, w = cv2.imread(paths[0]).shape[:2]
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32),
        torch.arange(w, dtype=torch.float32),
        indexing='ij')
    pos_map = torch.stack([xs, ys])
    crops = [sample_resized_crop(h, w) for _ in range(n)]
    t0 = time.perf_counter()
    for i, j, ch, cw in crops:
        p = TF.resized_crop(pos_map, i, j, ch, cw, [224, 224],
                            InterpolationMode.BICUBIC)
        F.avg_pool2d(p[None], 16)
    t_map = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for i, j, ch, cw in crops:
        patch_centres(
            torch.tensor([j, i, j + cw, i + ch], dtype=torch.float32),
            torch.tensor(False))
    t_closed = (time.perf_counter() - t0) / n
    return t_map, t_closed


def run(fn, paths, samples, warmup=10):
    """Samples per second of ``fn`` over ``paths`` (cycled)."""
    for k in range(warmup):
        fn(paths[k % len(paths)])
    t0 = time.perf_counter()
    for k in range(samples):
        fn(paths[k % len(paths)])
    return samples / (time.perf_counter() - t0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-dir', help='folder of JPEGs to use')
    parser.add_argument('--num-images', type=int, default=32)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument(
        '--samples',
        type=int,
        default=300,
        help='two-view samples per timed run')
    parser.add_argument(
        '--repeats',
        type=int,
        default=3,
        help='timed runs per pipeline (best is reported)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='also write the figures here')
    args = parser.parse_args(argv)

    core = pin_one_core()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        if args.data_dir:
            paths = sorted(
                glob.glob(
                    os.path.join(args.data_dir, '**', '*.jp*g'),
                    recursive=True))[:args.num_images]
            if not paths:
                parser.error(f'no JPEG under {args.data_dir}')
        else:
            paths = make_images(
                Path(tmp), args.num_images, args.height, args.width, args.seed)
        methods = {
            'baseline (reference-style)': ReferenceStylePipeline(),
            'ours': OursPipeline(),
            'ours+norm': OursPipeline(normalize=True),
        }
        # sanity: same outputs shapes
        for name, fn in methods.items():
            views, pos = fn(paths[0])
            assert len(views) == 2 and tuple(
                views[0].shape) == (3, 224, 224), name
            assert tuple(pos.shape) == (2, 2, 196), name
        best = {name: 0. for name in methods}
        for _ in range(args.repeats):  # interleaved, to share any noise
            for name, fn in methods.items():
                best[name] = max(best[name], run(fn, paths, args.samples))
        t_map, t_closed = geometry_only(paths, 200)
        img_h, img_w = cv2.imread(paths[0]).shape[:2]
    base = best['baseline (reference-style)']
    print(f'CrIBo two-view data pipeline, {len(paths)} JPEGs '
          f'{img_w}x{img_h} (first), one CPU thread ({core}), best of '
          f'{args.repeats} x {args.samples} samples')
    print(f'{"pipeline":30s} {"samples/s":>10s} {"ms/sample":>10s} '
          f'{"vs baseline":>12s}')
    for name, sps in best.items():
        print(f'{name:30s} {sps:10.1f} {1000. / sps:10.2f} '
              f'{sps / base:11.2f}x')
    print(f'positions only, per view: warped map + patch mean '
          f'{t_map * 1e3:.3f} ms, closed form {t_closed * 1e3:.3f} ms '
          f'({t_map / t_closed:.0f}x)')
    result = dict(
        images=len(paths),
        image_size=[img_h, img_w],
        samples=args.samples,
        repeats=args.repeats,
        samples_per_s=best,
        speedup=best['ours'] / base,
        speedup_with_cpu_normalize=best['ours+norm'] / base,
        positions_ms_per_view=dict(
            map=t_map * 1e3, closed_form=t_closed * 1e3),
        torch=torch.__version__,
        cpu=core)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == '__main__':
    main()
