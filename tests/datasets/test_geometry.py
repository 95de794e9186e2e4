# Copyright (c) cribo-mm contributors. All rights reserved.
"""Patch-centre geometry against the reference fixture and a pixel map."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cribo_mm.datasets.transforms.geometry import (crop_box_from_ijhw,
                                                   patch_centres,
                                                   sample_resized_crop)
from tests.fixtures import load_fixture


def pixel_map_positions(img_hw, box, flip, size=(224, 224), patch=16):
    """Reference approach: warp a per-pixel (x, y) map, average patches."""
    h, w = img_hw
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float64),
        torch.arange(w, dtype=torch.float64),
        indexing='ij')
    x1, y1, x2, y2 = (int(v) for v in box)
    crop = torch.stack([xs, ys])[None, :, y1:y2, x1:x2]
    out = F.interpolate(
        crop, size=size, mode='bicubic', align_corners=False,
        antialias=True)[0]
    if flip:
        out = out.flip(-1)
    gh, gw = size[0] // patch, size[1] // patch
    out = out[:, :gh * patch, :gw * patch]
    return F.avg_pool2d(out[None], patch)[0].flatten(1)


def test_matches_reference_fixture():
    cases = load_fixture('patch_positions.pt')['cases']
    assert len(cases) >= 7
    for case in cases:
        inp, out = case['inputs'], case['outputs']
        box = torch.tensor(crop_box_from_ijhw(*inp['crop']))
        pos = patch_centres(box, torch.tensor(inp['flip']),
                            (inp['size'], ) * 2, inp['patch_size'])
        assert pos.shape == (2, 196) and pos.dtype == torch.float32
        torch.testing.assert_close(pos, out['positions'], atol=1e-2, rtol=0)
        torch.testing.assert_close(
            pos.double(), out['analytic_centres'], atol=1e-4, rtol=0)


def test_identity_crop_is_exact():
    pos = patch_centres(torch.tensor([0., 0., 224., 224.]))
    grid = torch.arange(14.) * 16 + 7.5
    assert torch.equal(pos[0].view(14, 14), grid.expand(14, 14))
    assert torch.equal(pos[1].view(14, 14), grid[:, None].expand(14, 14))


def test_flip_mirrors_columns():
    box = torch.tensor([13., 7., 313., 207.])
    plain = patch_centres(box, torch.tensor(False)).view(2, 14, 14)
    flipped = patch_centres(box, torch.tensor(True)).view(2, 14, 14)
    assert torch.allclose(flipped[0], plain[0].flip(-1))
    assert torch.equal(flipped[1], plain[1])
    # mirror symmetry about the crop centre
    assert torch.allclose(plain[0] + plain[0].flip(-1),
                          torch.full((14, 14), 13. + 313. - 1.))


@pytest.mark.parametrize(
    'img_hw,box,flip',
    [
        ((480, 640), (100, 50, 500, 350), False),  # shrink, interior
        ((300, 1000), (0, 0, 300, 300), True),  # non-square, top-left border
        ((1000, 300), (200, 700, 300, 1000), False),  # bottom-right border
        ((64, 48), (0, 0, 48, 64), True),  # whole small image, upscale 4x
        ((500, 333), (40, 120, 290, 380), True),  # non-square crop
        ((200, 200), (10, 20, 130, 100), True),  # anisotropic upscale
    ])
def test_matches_pixel_map(img_hw, box, flip):
    ref = pixel_map_positions(img_hw, box, flip)
    pos = patch_centres(
        torch.tensor(box, dtype=torch.float64), torch.tensor(flip))
    torch.testing.assert_close(pos, ref, atol=1e-2, rtol=0)


def test_extreme_upscale_differs_only_at_the_border():
    # 11x / 19x upscales: the reference map warp clamps the map at the crop
    # border (a replicated edge pixel), which bends the border patches by up
    # to ~0.1 px; patches away from the border still agree.
    box, img_hw = (5, 7, 25, 19), (40, 40)
    ref = pixel_map_positions(img_hw, box, False).view(2, 14, 14)
    pos = patch_centres(torch.tensor(box, dtype=torch.float64),
                        False).view(2, 14, 14)
    diff = (ref - pos).abs()
    assert diff.max() < 0.1
    assert diff[0][:, 2:-2].max() < 1e-2  # x: 2+ patches from the edge
    assert diff[1][3:-3].max() < 1e-2  # y: 3+ patches (19x upscale)


def test_non_square_output_and_patch():
    box = (10, 20, 130, 100)
    ref = pixel_map_positions((200, 200), box, True, size=(96, 160), patch=8)
    pos = patch_centres(
        torch.tensor(box, dtype=torch.float64),
        True,
        out_size=(96, 160),
        patch_size=8)
    assert pos.shape == (2, 12 * 20)
    torch.testing.assert_close(pos, ref, atol=1e-2, rtol=0)


def test_output_not_multiple_of_patch():
    # 230 px view with 16 px patches: 14 patches, the last 6 px are unused
    box = (0, 0, 460, 460)
    for flip in (False, True):
        ref = pixel_map_positions((460, 460), box, flip, size=(230, 230))
        pos = patch_centres(
            torch.tensor(box, dtype=torch.float64), flip, out_size=230)
        torch.testing.assert_close(pos, ref, atol=1e-2, rtol=0)


def test_batched_shapes_dtype_device():
    boxes = torch.tensor([[[0, 0, 100, 80], [10, 10, 50, 50]],
                          [[5, 5, 205, 105], [0, 0, 640, 480]]])
    flips = torch.tensor([[True, False], [False, True]])
    pos = patch_centres(boxes, flips)
    assert pos.shape == (2, 2, 2, 196) and pos.dtype == torch.float32
    for b in range(2):
        for v in range(2):
            assert torch.equal(pos[b, v],
                               patch_centres(boxes[b, v], flips[b, v]))
    # no flip argument = no flip; float64 in -> float64 out
    assert torch.equal(
        patch_centres(boxes.double(), None)[0, 1],
        patch_centres(boxes[0, 1].double(), torch.tensor(False)))
    with pytest.raises(ValueError):
        patch_centres(torch.zeros(3))


def test_sample_resized_crop_statistics():
    rng = np.random.RandomState(0)
    for h, w in [(480, 640), (1000, 300), (50, 70), (1, 1), (3, 500)]:
        for _ in range(200):
            i, j, ch, cw = sample_resized_crop(
                h,
                w,
                uniform=rng.uniform,
                randint=lambda a, b: int(rng.randint(a, b)))
            assert 0 <= i and 0 <= j and ch >= 1 and cw >= 1
            assert i + ch <= h and j + cw <= w
    areas, ratios = [], []
    for _ in range(2000):
        i, j, ch, cw = sample_resized_crop(
            480,
            640,
            uniform=rng.uniform,
            randint=lambda a, b: int(rng.randint(a, b)))
        areas.append(ch * cw / (480 * 640))
        ratios.append(cw / ch)
    assert 0.24 <= min(areas) and max(areas) <= 1.0
    assert 0.74 <= min(ratios) and max(ratios) <= 1.34


def test_sample_resized_crop_matches_torchvision():
    T = pytest.importorskip('torchvision.transforms')
    for hw in [(480, 640), (300, 1000), (1000, 300), (7, 5)]:
        img = torch.zeros(1, *hw)
        torch.manual_seed(0)
        ref = [
            T.RandomResizedCrop.get_params(img, (0.25, 1.), (3 / 4, 4 / 3))
            for _ in range(300)
        ]
        torch.manual_seed(0)
        ours = [
            sample_resized_crop(
                *hw,
                uniform=lambda a, b: torch.empty(1).uniform_(a, b).item(),
                randint=lambda a, b: int(torch.randint(a, b, (1, )).item()))
            for _ in range(300)
        ]
        assert ours == [tuple(int(v) for v in r) for r in ref]


def test_sample_resized_crop_fallback():
    # a 3 x 500 strip can never fit the ratio range: centred fallback
    never = iter(range(10**6))
    i, j, h, w = sample_resized_crop(
        3, 500, uniform=lambda a, b: b, randint=lambda a, b: next(never))
    assert (h, w) == (3, 4) and (i, j) == (0, 248)
