# Copyright (c) cribo-mm contributors. All rights reserved.
"""A real mmengine DataLoader built from the config: views and geometry."""
import copy

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.runner import Runner, set_random_seed
from PIL import Image

from cribo_mm.datasets.transforms import patch_centres
from tests.datasets.test_geometry import pixel_map_positions

CFG = 'configs/_base_/datasets/demo_cribo.py'


def _loader_cfg(cfg, **dataset):
    dl = copy.deepcopy(cfg.train_dataloader)
    dl.update(
        batch_size=4,
        num_workers=0,
        persistent_workers=False,
        pin_memory=False)
    dl.dataset.update(num_train=8, num_val=2, **dataset)
    return dl


def _reference_view(rgb, box, flip, size=224):
    """Independent crop + bicubic resize (torch, antialiased) + flip."""
    x1, y1, x2, y2 = (int(v) for v in box)
    t = torch.from_numpy(rgb[y1:y2, x1:x2]).permute(2, 0, 1)[None].double()
    out = F.interpolate(
        t,
        size=(size, size),
        mode='bicubic',
        align_corners=False,
        antialias=True)[0]
    if flip:
        out = out.flip(-1)
    return out.clamp(0, 255)


def _first_batch(dl_cfg, seed):
    # workers=0: the transforms draw from the global generators, which
    # mmengine seeds from `randomness.seed` (workers get their own seeds)
    set_random_seed(seed)
    return next(iter(Runner.build_dataloader(dl_cfg, seed=seed)))


def test_dataloader_batches_views_and_geometry(mmpretrain_scope):
    cfg = Config.fromfile(CFG)
    batch = _first_batch(_loader_cfg(cfg), 0)
    views, samples = batch['inputs'], batch['data_samples']
    assert isinstance(views, list) and len(views) == 2
    for v in views:
        assert v.shape == (4, 3, 224, 224) and v.dtype == torch.uint8
    assert len(samples) == 4
    boxes = torch.stack([s.crop_bbox for s in samples])
    flips = torch.stack([s.crop_flip for s in samples])
    assert boxes.shape == (4, 2, 4) and boxes.dtype == torch.float32
    assert flips.shape == (4, 2) and flips.dtype == torch.bool
    assert all(tuple(s.ori_shape) == (256, 256) for s in samples)
    pos = patch_centres(boxes, flips)
    assert pos.shape == (4, 2, 2, 196)
    # recompute one sample's positions the reference way (warped map)
    for v in range(2):
        ref = pixel_map_positions((256, 256), boxes[0, v].tolist(),
                                  bool(flips[0, v]))
        torch.testing.assert_close(pos[0, v].double(), ref, atol=1e-2, rtol=0)
    # the model's data preprocessor from the same config accepts the batch
    from mmpretrain.registry import MODELS
    pre = MODELS.build(cfg.data_preprocessor)
    out = pre(batch)
    assert len(out['inputs']) == 2
    assert out['inputs'][0].shape == (4, 3, 224, 224)
    assert out['inputs'][0].dtype == torch.float32
    # different seeds -> different crops; same seed -> same crops
    again = _first_batch(_loader_cfg(cfg), 0)
    other = _first_batch(_loader_cfg(cfg), 1)
    same = torch.stack([s.crop_bbox for s in again['data_samples']])
    diff = torch.stack([s.crop_bbox for s in other['data_samples']])
    assert torch.equal(boxes, same) and not torch.equal(boxes, diff)
    assert torch.equal(views[0], again['inputs'][0])


def test_dataloader_views_are_the_recorded_crops(mmpretrain_scope):
    """With the photometric part removed, each view equals an independent
    crop/resize/flip of the original image at the recorded geometry."""
    cfg = Config.fromfile(CFG)
    pipeline = copy.deepcopy(cfg.train_pipeline)
    assert pipeline[1]['type'] == 'CrIBoMultiView'
    pipeline[1]['transforms'] = [cfg.spatial_pipeline, cfg.spatial_pipeline]
    dl = _loader_cfg(cfg, pipeline=pipeline)
    dl.batch_size = 3
    batch = _first_batch(dl, 3)
    for b, sample in enumerate(batch['data_samples']):
        rgb = np.array(Image.open(sample.img_path).convert('RGB'))
        for v in range(2):
            view = batch['inputs'][v][b].double().flip(0)  # BGR -> RGB
            ref = _reference_view(rgb, sample.crop_bbox[v],
                                  bool(sample.crop_flip[v]))
            err = (view - ref).abs()
            # cv2 and torch bicubic differ only in their antialias filter
            # (measured: 0.3 - 0.9 grey levels out of 255)
            assert err.mean() < 1.5, (b, v, err.mean())
            # the opposite flip would be far off (measured: 28 - 57)
            assert (view - ref.flip(-1)).abs().mean() > 10 * err.mean()
