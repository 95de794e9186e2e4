# Copyright (c) cribo-mm contributors. All rights reserved.
"""Spatial transforms, the two-view wrapper and packing."""
import copy
import random

import numpy as np
import pytest
import torch
from mmengine.config import Config

from cribo_mm.datasets.transforms import (CrIBoMultiView, CrIBoRandomFlip,
                                          CrIBoRandomResizedCrop,
                                          crop_box_from_ijhw, patch_centres)
from tests.fixtures import load_fixture

PIPELINE_CFG = 'configs/_base_/datasets/cribo_pipeline.py'


def _patch_means(view, patch=16):
    """Mean of each patch of an (H, W) array, row-major -> (n,)."""
    h, w = view.shape[0] // patch, view.shape[1] // patch
    v = view[:h * patch, :w * patch].reshape(h, patch, w, patch)
    return v.mean(axis=(1, 3)).reshape(-1)


def _fixed_crop(t, ijhw):
    t.get_params = lambda h, w: tuple(ijhw)
    return t


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_view_content_matches_fixture(backend, coord_image):
    """Crop + flip of a coordinate image reproduces the reference centres."""
    cases = load_fixture('patch_positions.pt')['cases']
    for case in cases:
        inp = case['inputs']
        h, w = inp['image_hw']
        img = coord_image(h, w)
        crop = _fixed_crop(
            CrIBoRandomResizedCrop(224, backend=backend), inp['crop'])
        flip = CrIBoRandomFlip(prob=1.0 if inp['flip'] else 0.0)
        views = []
        for c in range(2):  # Pillow resizes single-channel float images
            res = flip(crop(dict(img=np.ascontiguousarray(img[..., c]))))
            views.append(res['img'])
        assert tuple(res['crop_bbox']) == crop_box_from_ijhw(*inp['crop'])
        assert res['crop_flip'] is bool(inp['flip'])
        got = torch.from_numpy(np.stack([_patch_means(v)
                                         for v in views])).float()
        torch.testing.assert_close(
            got, case['outputs']['positions'], atol=1e-2, rtol=0)
        recorded = patch_centres(
            torch.from_numpy(res['crop_bbox']), res['crop_flip'])
        torch.testing.assert_close(got, recorded, atol=1e-2, rtol=0)


@pytest.mark.parametrize(
    'ijhw,img_hw',
    [
        ((0, 0, 480, 640), (480, 640)),  # 2.9x shrink: area pre-reduction
        ((100, 40, 900, 250), (1000, 300)),  # 4x vertical shrink, border-free
        ((0, 0, 60, 50), (60, 50)),  # image smaller than the crop: 4x upscale
    ])
def test_strong_shrink_and_upscale_geometry(ijhw, img_hw, coord_image):
    img = coord_image(*img_hw)
    for flip_p in (0., 1.):
        res = CrIBoRandomFlip(flip_p)(
            _fixed_crop(CrIBoRandomResizedCrop(224), ijhw)(dict(img=img)))
        got = np.stack([_patch_means(res['img'][..., c]) for c in range(2)])
        ref = patch_centres(torch.tensor(res['crop_bbox']), res['crop_flip'])
        assert res['img'].shape == (224, 224, 3)
        np.testing.assert_allclose(got, ref.numpy(), atol=2e-2)


def test_random_crop_records_valid_boxes_and_is_seeded():
    ys, xs = np.mgrid[0:90, 0:130]
    img = np.stack([xs * 1.9, ys * 2.8, 128 + 100 * np.sin(xs / 9.)],
                   -1).astype(np.uint8)
    t = CrIBoRandomResizedCrop(size=(32, 48), scale=(0.1, 1.0))
    np.random.seed(3)
    first = [t(dict(img=img, ori_shape=(90, 130))) for _ in range(20)]
    np.random.seed(3)
    again = [t(dict(img=img, ori_shape=(90, 130))) for _ in range(20)]
    for a, b in zip(first, again):
        assert np.array_equal(a['crop_bbox'], b['crop_bbox'])
        assert np.array_equal(a['img'], b['img'])
        x1, y1, x2, y2 = a['crop_bbox']
        assert a['crop_bbox'].dtype == np.float32
        assert 0 <= x1 < x2 <= 130 and 0 <= y1 < y2 <= 90
        assert a['img'].shape == (32, 48, 3) and a['img'].dtype == np.uint8
        assert a['img_shape'] == (32, 48) and a['crop_flip'] is False
    assert len({tuple(r['crop_bbox']) for r in first}) > 10
    # the view is the resized crop of the recorded box
    r = first[0]
    x1, y1, x2, y2 = (int(v) for v in r['crop_bbox'])
    import cv2
    ref = cv2.resize(img[y1:y2, x1:x2], (48, 32), interpolation=cv2.INTER_AREA)
    assert np.abs(ref.astype(int) - r['img'].astype(int)).mean() < 2.0


def test_crop_must_be_first_spatial_transform():
    t = CrIBoRandomResizedCrop()
    with pytest.raises(ValueError, match='first spatial transform'):
        t(dict(img=np.zeros((20, 30, 3), np.uint8), ori_shape=(40, 60)))
    with pytest.raises(ValueError):
        CrIBoRandomResizedCrop(interpolation='magic')
    with pytest.raises(ValueError):
        CrIBoRandomResizedCrop(backend='torch')


def test_grayscale_2d_and_tiny_images():
    for shape in [(1, 1), (3, 2, 3), (5, 400, 3), (7, 9, 1)]:
        img = np.full(shape, 100, np.uint8)
        res = CrIBoRandomFlip(1.)(CrIBoRandomResizedCrop(16)(dict(img=img)))
        assert res['img'].shape[:2] == (16, 16)
        assert res['img'].ndim == img.ndim
        assert (res['img'] == 100).all()
        assert res['crop_flip'] is True


def test_flip_toggles_and_defaults_box():
    img = np.arange(12, dtype=np.uint8).reshape(3, 4, 1).repeat(3, -1)
    res = CrIBoRandomFlip(1.)(dict(img=img))
    assert np.array_equal(res['img'], img[:, ::-1])
    assert res['crop_flip'] is True
    assert res['crop_bbox'].tolist() == [0, 0, 4, 3]
    res = CrIBoRandomFlip(1.)(res)
    assert res['crop_flip'] is False and np.array_equal(res['img'], img)
    with pytest.raises(ValueError):
        CrIBoRandomFlip(1.5)
    np.random.seed(0)
    flips = [
        CrIBoRandomFlip(0.5)(dict(img=img))['crop_flip'] for _ in range(400)
    ]
    assert 150 < sum(flips) < 250


def test_reprs():
    assert repr(CrIBoRandomResizedCrop(224)) == (
        'CrIBoRandomResizedCrop(size=(224, 224), scale=(0.25, 1.0), '
        "ratio=(0.75, 1.3333), max_attempts=10, interpolation='bicubic', "
        "backend='cv2')")
    assert repr(CrIBoRandomFlip(0.5)) == 'CrIBoRandomFlip(prob=0.5)'
    mv = CrIBoMultiView([[dict(type='CrIBoRandomFlip')]], num_views=2)
    assert 'CrIBoMultiView(' in repr(mv) and '2 views' in repr(mv)
    assert 'CrIBoRandomFlip(prob=0.5)' in repr(mv)


def _pipeline(mmpretrain_scope):
    cfg = Config.fromfile(PIPELINE_CFG)
    from mmengine.dataset import Compose
    return cfg, Compose(copy.deepcopy(cfg.train_pipeline))


def test_config_pipeline_two_views_and_packing(mmpretrain_scope, tmp_path):
    import cv2
    img = np.random.RandomState(1).randint(0, 255, (120, 170, 3), np.uint8)
    cv2.imwrite(str(tmp_path / 'a.png'), img)
    cfg, pipe = _pipeline(mmpretrain_scope)
    np.random.seed(0)
    random.seed(0)
    out = pipe(dict(img_path=str(tmp_path / 'a.png'), sample_idx=3))
    assert set(out) == {'inputs', 'data_samples'}
    views = out['inputs']
    assert isinstance(views, list) and len(views) == 2
    for v in views:
        assert v.shape == (3, 224, 224) and v.dtype == torch.uint8
    ds = out['data_samples']
    assert ds.crop_bbox.shape == (2, 4) and ds.crop_bbox.dtype == torch.float32
    assert ds.crop_flip.shape == (2, ) and ds.crop_flip.dtype == torch.bool
    assert tuple(ds.ori_shape) == (120, 170)
    assert ds.img_path.endswith('a.png') and ds.sample_idx == 3
    assert 'crop_bbox' in ds.keys() and 'ori_shape' in ds.metainfo_keys()
    box = ds.crop_bbox
    assert (box[:, 0] >= 0).all() and (box[:, 2] <= 170).all()
    assert (box[:, 1] >= 0).all() and (box[:, 3] <= 120).all()
    assert ((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])
            >= 0.24 * 120 * 170).all()
    # same seed -> same sample; the data sample moves with .to()
    np.random.seed(0)
    random.seed(0)
    again = pipe(dict(img_path=str(tmp_path / 'a.png'), sample_idx=3))
    for a, b in zip(views, again['inputs']):
        assert torch.equal(a, b)
    assert torch.equal(ds.crop_bbox, again['data_samples'].crop_bbox)
    assert ds.to('cpu').crop_bbox.dtype == torch.float32


def test_config_photometric_views_differ(mmpretrain_scope, tmp_path):
    """View 2 is solarised sometimes, view 1 always blurred."""
    import cv2
    rs = np.random.RandomState(2)
    img = rs.randint(0, 255, (64, 64, 3), np.uint8)
    cv2.imwrite(str(tmp_path / 'b.png'), img)
    cfg, _ = _pipeline(mmpretrain_scope)
    from mmpretrain.registry import TRANSFORMS
    v1 = [TRANSFORMS.build(t) for t in cfg.view_pipeline1]
    v2 = [TRANSFORMS.build(t) for t in cfg.view_pipeline2]
    assert [type(t).__name__ for t in v1] == [
        'CrIBoRandomResizedCrop', 'CrIBoRandomFlip', 'RandomApply',
        'RandomGrayscale', 'GaussianBlur'
    ]
    assert [type(t).__name__ for t in v2][-2:] == ['GaussianBlur', 'Solarize']
    assert v1[-1].prob == 1.0 and v2[-2].prob == 0.1 and v2[-1].prob == 0.2
    np.random.seed(0)
    random.seed(0)
    grays = 0
    for _ in range(40):
        res = dict(img=img.copy(), ori_shape=(64, 64))
        for t in v2:
            res = t(res)
        out = res['img']
        assert out.shape == (224, 224, 3) and out.dtype == np.uint8
        grays += int((out[..., 0] == out[..., 1]).all()
                     and (out[..., 1] == out[..., 2]).all())
    assert 1 <= grays <= 20  # p = 0.2


def test_multiview_collects_geometry(mmpretrain_scope):
    img = np.zeros((50, 80, 3), np.uint8)
    mv = CrIBoMultiView([[
        dict(type='CrIBoRandomResizedCrop', size=32),
        dict(type='CrIBoRandomFlip', prob=1.0)
    ], [dict(type='CrIBoRandomResizedCrop', size=32)]],
                        num_views=[2, 1])
    res = mv(dict(img=img, ori_shape=(50, 80)))
    assert len(res['img']) == 3
    assert res['crop_bbox'].shape == (3, 4)
    assert res['crop_flip'].tolist() == [True, True, False]
    assert res['img_shape'] == (32, 32)
    assert res['img'] is not img and res['ori_shape'] == (50, 80)
    # a view without a crop gets the whole image as its box
    mv = CrIBoMultiView([[dict(type='CrIBoRandomFlip', prob=0.)]])
    res = mv(dict(img=img))
    assert res['crop_bbox'].tolist() == [[0, 0, 80, 50]]
    with pytest.raises(TypeError):
        CrIBoMultiView([dict(type='CrIBoRandomFlip')])
    with pytest.raises(ValueError):
        CrIBoMultiView([[dict(type='CrIBoRandomFlip')]], num_views=[1, 1])


def test_color_jitter_hue_matches_mmcv_and_handles_negative():
    import mmcv

    from cribo_mm.datasets.transforms import CrIBoColorJitter, adjust_hue
    from cribo_mm.utils.compat import MMCV_ADJUST_HUE
    img = np.random.RandomState(0).randint(0, 255, (16, 16, 3), np.uint8)
    for f in (0.03, 0.1, 0.5):  # mmcv's own code works for factors >= 0
        assert np.array_equal(
            adjust_hue(img, f), MMCV_ADJUST_HUE(img, f, backend='cv2'))
    # mmcv.adjust_hue (used by mmpretrain's ColorJitter) is the safe one
    assert np.array_equal(mmcv.adjust_hue(img, -0.1), adjust_hue(img, -0.1))
    import cv2
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV_FULL).astype(int)
    hsv[..., 0] = (hsv[..., 0] - 25) % 256  # int(-0.1 * 255) = -25
    expected = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR_FULL)
    assert np.array_equal(adjust_hue(img, -0.1), expected)
    t = CrIBoColorJitter(0.4, 0.4, 0.2, 0.1)
    np.random.seed(0)
    for _ in range(30):  # would raise OverflowError with mmcv's hue on np 2
        out = t(dict(img=img))['img']
        assert out.shape == img.shape and out.dtype == np.uint8
    assert 'ColorJitter' in repr(t)


def test_color_jitter_fast_kernels_match_mmcv():
    import warnings

    import mmcv

    from cribo_mm.datasets.transforms import photometric as P
    img = np.random.RandomState(1).randint(0, 255, (32, 32, 3), np.uint8)
    pairs = [(P.adjust_brightness, mmcv.adjust_brightness),
             (P.adjust_contrast, mmcv.adjust_contrast),
             (P.adjust_saturation, mmcv.adjust_color)]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for f in (0.6, 1.0, 1.4):
            for ours, theirs in pairs:
                for backend in ('cv2', 'pillow'):
                    diff = ours(img, f).astype(int) - theirs(
                        img, f, backend=backend).astype(int)
                    assert np.abs(diff).max() <= 1, (ours.__name__, f)
