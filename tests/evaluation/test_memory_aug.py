# Copyright (c) cribo-mm contributors. All rights reserved.
"""open-hummingbird-eval's memory augmentation (``--memory-aug hbird``)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cribo_mm.evaluation.dense_nn.data import RetrievalSegDataset
from cribo_mm.evaluation.dense_nn.memory_aug import (hbird_augment,
                                                     hbird_crop_params,
                                                     hbird_jitter)


def test_crop_params_inside_and_distributed_as_torchvision():
    rng = np.random.default_rng(0)
    height, width = 90, 120
    areas, centre = [], 0
    for _ in range(3000):
        top, left, h, w = hbird_crop_params(height, width, rng)
        assert 0 <= top and top + h <= height and 0 < h
        assert 0 <= left and left + w <= width and 0 < w
        areas.append(h * w / (height * width))
        if (h, w) == (90, 120):
            centre += 1
    areas = np.array(areas)
    # a crop is redrawn while its area exceeds the image: the kept areas
    # are uniform in [0.5, 1] (rounding aside); after 10 misses (about
    # 0.82 ** 10 = 13 % for a 4:3 image) the centre crop is used
    assert areas.min() > 0.45 and areas.max() <= 1.
    assert 0.09 < centre / len(areas) < 0.18
    # the same distribution as torchvision's RandomResizedCrop.get_params
    from torchvision.transforms import RandomResizedCrop
    torch.manual_seed(0)
    ref, ref_centre = [], 0
    for _ in range(3000):
        _, _, h, w = RandomResizedCrop.get_params(
            torch.empty(3, height, width), (0.5, 2.), (3. / 4., 4. / 3.))
        ref.append(h * w / (height * width))
        ref_centre += (h, w) == (90, 120)
    ref = np.array(ref)
    assert abs(centre - ref_centre) / len(areas) < 0.03
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        assert abs(np.quantile(areas, q) - np.quantile(ref, q)) < 0.025, q
    # the aspect ratio stays within 3/4..4/3 (+ rounding)
    rng = np.random.default_rng(1)
    for _ in range(500):
        _, _, h, w = hbird_crop_params(height, width, rng)
        assert 0.7 < w / h < 1.4
    # a very wide image: the fallback clamps the ratio to 4/3
    top, left, h, w = hbird_crop_params(
        10, 1000, np.random.default_rng(0), attempts=0)
    assert (top, h, w) == (0, 10, 13) and left == (1000 - 13) // 2


def test_jitter_is_weak_and_independent():
    image = torch.rand(3, 16, 16) * 255
    same = hbird_jitter(image, np.random.default_rng(0), prob=0.)
    torch.testing.assert_close(same, image)
    changed = 0
    for seed in range(40):
        out = hbird_jitter(image, np.random.default_rng(seed))
        assert out.shape == image.shape
        assert 0 <= float(out.min()) and float(out.max()) <= 255
        changed += not torch.allclose(out, image)
        # strength 0.1: a small change of the mean brightness
        assert abs(float(out.mean() - image.mean())) < 0.15 * 255
    # each of the four jitters has p = 0.5: almost always one applies
    assert changed >= 35


def test_augment_is_jitter_then_shared_crop_without_flip():
    height, width, out = 48, 64, (32, 32)
    label = torch.zeros(height, width, dtype=torch.int64)
    label[:, width // 2:] = 1  # left half 0, right half 1
    label[:height // 3] = 2  # top third 2
    image = torch.rand(3, height, width) * 255
    for seed in range(30):
        img_out, lab_out = hbird_augment(image, label, out,
                                         np.random.default_rng(seed))
        assert img_out.shape == (3, *out) and lab_out.shape == out
        assert lab_out.dtype == torch.int64
        # the same draws in the same order give the same crop
        rng = np.random.default_rng(seed)
        jittered = hbird_jitter(image, rng)
        top, left, h, w = hbird_crop_params(height, width, rng)
        expected = F.interpolate(
            label[None, None, top:top + h, left:left + w].float(),
            size=out, mode='nearest')[0, 0].long()
        torch.testing.assert_close(lab_out, expected)
        crop = F.interpolate(
            jittered[None, :, top:top + h, left:left + w], size=out,
            mode='bilinear', align_corners=False, antialias=True)[0]
        torch.testing.assert_close(img_out, crop.clamp(0, 255))
        # never flipped: class 1 (right half) never left of class 0
        rows = lab_out[lab_out.ne(2).all(dim=1)]
        for row in rows:
            cols = row.tolist()
            if 0 in cols and 1 in cols:
                assert max(i for i, c in enumerate(cols) if c == 0) < min(
                    i for i, c in enumerate(cols) if c == 1)
    with pytest.raises(ValueError, match='differ in size'):
        hbird_augment(image, label[:10], out, np.random.default_rng(0))


class _Seg:
    """A data set of one 40x60 BGR image and its label map."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.img = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
        self.label = np.repeat(np.arange(60)[None] // 20, 40, 0)

    def __len__(self):
        return 1

    def __getitem__(self, index):
        return dict(img=self.img, gt_seg_map=self.label.astype(np.uint8),
                    img_path='x.png', seg_map_path='x.png')


def test_retrieval_dataset_uses_the_recipe_on_memory_only():
    seg = _Seg()
    for epoch in range(3):
        item = RetrievalSegDataset(
            seg, img_size=32, memory=True, augment=True, epoch=epoch,
            memory_aug='hbird')[0]
        assert item['img'].shape == (3, 32, 32)
        assert item['label'].shape == (32, 32)
        # no flip: the classes 0 | 1 | 2 stay in order from left to right
        for row in item['label']:
            assert torch.all(row[1:] >= row[:-1])
    # queries are never augmented: the label keeps its original size
    query = RetrievalSegDataset(
        seg, img_size=32, memory=False, augment=True, memory_aug='hbird')[0]
    assert query['label'].shape == (40, 60)
    with pytest.raises(ValueError, match='memory_aug'):
        RetrievalSegDataset(seg, memory_aug='strong')


def test_side_by_side_columns_are_labelled():
    from cribo_mm.evaluation.dense_nn import side_by_side
    gt = np.zeros((30, 50), np.int64)
    image = np.zeros((30, 50, 3), np.uint8)
    plain = side_by_side(image, gt, gt, None, 2, titles=None)
    assert plain.shape == (30, 3 * 50 + 2 * 4, 3)
    titled = side_by_side(image, gt, gt, None, 2)
    assert titled.shape == (22 + 30, 158, 3)
    np.testing.assert_array_equal(titled[22:], plain)
    strip = titled[:22]
    # dark text in each column's strip, white in the gaps between them
    for k in range(3):
        column = strip[:, k * 54:k * 54 + 50]
        assert (column < 128).any(), k
    assert (strip[:, 50:54] == 255).all()
    with pytest.raises(ValueError, match='3 columns'):
        side_by_side(image, gt, gt, None, 2, titles=('a', 'b'))


def test_tool_memory_aug_hbird(stripes_data, tmp_path):
    import json

    from cribo_mm.evaluation.dense_nn import build_backbone
    from tests.evaluation.test_dense_nn_pipeline import (load_tool,
                                                         write_tiny_vit_config)
    tool = load_tool()
    vit, cfg = write_tiny_vit_config(tmp_path)
    torch.manual_seed(0)
    torch.save({'state_dict': build_backbone(dict(vit)).state_dict()},
               tmp_path / 'vit.pth')
    common = [
        str(cfg), str(tmp_path / 'vit.pth'), '--dataset',
        stripes_data['config'], '--img-size', '64', '--device', 'cpu',
        '--no-progress', '--prefix', ''
    ]
    results = {}
    for aug in ('default', 'hbird'):
        out = tmp_path / f'{aug}.json'
        tool.main(common + ['--memory-aug', aug, '--out', str(out)])
        with open(out) as f:
            saved = json.load(f)
        assert saved['settings']['memory_aug'] == aug
        results[aug] = saved['runs'][0]['metrics']['mIoU']
        assert 0 <= results[aug] <= 100
    # different memories (crops vs whole images): different scores
    assert results['default'] != results['hbird']
    with pytest.raises(SystemExit):
        tool.parse_args(common + ['--memory-aug', 'strong'])


def test_side_by_side_titles_fit_narrow_columns():
    from cribo_mm.evaluation.dense_nn import side_by_side
    gt = np.zeros((20, 40), np.int64)
    titled = side_by_side(np.zeros((20, 40, 3), np.uint8), gt, gt, None, 2)
    strip = titled[:22]
    # the long third title stays inside its column: the gaps stay white
    assert (strip[:, 40:44] == 255).all() and (strip[:, 84:88] == 255).all()
    assert (strip[:, 88:] < 128).any()
