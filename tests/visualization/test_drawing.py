# Copyright (c) cribo-mm contributors. All rights reserved.
"""Pure drawing helpers of :mod:`cribo_mm.visualization`."""
import numpy as np
import pytest
import torch

from cribo_mm.datasets.transforms.geometry import patch_centres
from cribo_mm.visualization import (BoxItem, TextItem, annotate, blank,
                                    compose_neighbour_pair,
                                    compose_object_clusters, hard_labels,
                                    hatch_mask, highlight_mask, hstack_panels,
                                    label_boundaries, labels_to_grid,
                                    load_png, mask_anchor, object_palette,
                                    overlay_objects, render, resize_labels,
                                    save_png, tile, view_to_original,
                                    vstack_panels)
from cribo_mm.visualization.figures import wrap_text

from .conftest import assert_not_blank


def test_palette_distinct_and_deterministic():
    a, b = object_palette(16), object_palette(16)
    assert a.shape == (16, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert len({tuple(c) for c in a}) == 16
    # consecutive ids are far apart
    dist = np.abs(a[1:].astype(int) - a[:-1].astype(int)).sum(1)
    assert dist.min() > 60
    with pytest.raises(ValueError):
        object_palette(-1)


def test_hard_labels_and_grid():
    assign = torch.zeros(6, 3)
    assign[[0, 1], 0] = 1
    assign[[2, 3, 4, 5], 2] = 1
    assign[3, 1] = 1  # tie: lowest id wins
    labels = hard_labels(assign)
    np.testing.assert_array_equal(labels, [0, 0, 2, 1, 2, 2])
    grid = labels_to_grid(labels, (2, 3))
    assert grid.shape == (2, 3)
    with pytest.raises(ValueError):
        labels_to_grid(labels, (4, 4))


def test_resize_labels_pixel_centres():
    grid = np.arange(6).reshape(2, 3)
    big = resize_labels(grid, (4, 6))
    np.testing.assert_array_equal(big[::2, ::2], grid)
    np.testing.assert_array_equal(big[1::2, 1::2], grid)
    assert resize_labels(grid, (2, 3)).tolist() == grid.tolist()


@pytest.mark.parametrize('flip', [False, True])
def test_view_to_original_matches_patch_centres(flip):
    """The patch centre of grid cell (r, c) maps back to label (r, c)."""
    box = torch.tensor([17., 9., 141., 101.])
    grid = np.arange(14 * 14).reshape(14, 14)
    full = view_to_original(grid, box.tolist(), flip, (120, 160))
    centres = patch_centres(box, torch.tensor(flip), (224, 224), 16)
    xs = centres[0].round().long().numpy()
    ys = centres[1].round().long().numpy()
    np.testing.assert_array_equal(full[ys, xs], np.arange(14 * 14))
    # outside the box
    assert (full[:, :17] == -1).all() and (full[:9] == -1).all()
    assert (full[:, 141:] == -1).all() and (full[101:] == -1).all()
    assert (full[9:101, 17:141] >= 0).all()


def test_view_to_original_rejects_empty_box():
    with pytest.raises(ValueError):
        view_to_original(np.zeros((2, 2)), [5, 5, 5, 9], False, (10, 10))


def test_boundaries_hatch_anchor():
    lab = np.zeros((6, 6), int)
    lab[:, 3:] = 1
    edge = label_boundaries(lab)
    assert edge[:, 2].all() and edge.sum() == 6
    hatch = hatch_mask((40, 40), spacing=8, width=2)
    assert abs(hatch.mean() - 0.25) < 0.02
    ring = np.zeros((41, 41), bool)
    ring[5:36, 5:36] = True
    ring[15:26, 15:26] = False
    x, y = mask_anchor(ring)
    assert ring[int(y), int(x)]
    with pytest.raises(ValueError):
        mask_anchor(np.zeros((3, 3), bool))


def test_overlay_objects_valid_invalid_untouched():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    lab = np.full((32, 48), -1)
    lab[:, :16] = 0
    lab[:, 16:32] = 1
    palette = np.array([[255, 0, 0], [0, 0, 255]], np.uint8)
    out = overlay_objects(image, lab, [True, False], palette, alpha=0.5,
                          boundary_color=None)
    np.testing.assert_array_equal(out[:, 32:], image[:, 32:])
    red = out[:, :16].astype(int)
    assert (red[..., 0] >= image[:, :16, 0] // 2).all()
    assert red[..., 0].mean() > red[..., 2].mean() + 40
    grey = out[:, 16:32].astype(int)
    assert np.abs(grey[..., 0] - grey[..., 2]).max() <= 1  # greyed
    hatched = overlay_objects(image, lab, [True, False], palette,
                              invalid_style='hatch', boundary_color=None)
    plain = overlay_objects(image, lab, [True, False], palette,
                            invalid_style='grey', boundary_color=None)
    diff = (hatched != plain).any(2)
    assert diff[:, 16:32].mean() > 0.15 and not diff[:, :16].any()
    with pytest.raises(ValueError):
        overlay_objects(image, lab[:10], [True, False], palette)


def test_highlight_mask():
    image = np.full((20, 20, 3), 200, np.uint8)
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    out = highlight_mask(image, mask, (255, 215, 0), outline=0)
    assert out[0, 0].mean() < 150
    assert out[10, 10, 0] > out[10, 10, 2]


def test_stacking_offsets():
    a, b = blank(10, 20, (0, 0, 0)), blank(30, 5, (0, 0, 0))
    row, off = hstack_panels([a, b], gap=3)
    assert row.shape == (30, 28, 3) and off == [(0, 0), (23, 0)]
    col, off = vstack_panels([a, b], gap=2)
    assert col.shape == (42, 20, 3) and off == [(0, 0), (0, 12)]


def test_annotate_size_and_determinism():
    canvas = blank(60, 120)
    items = [
        TextItem('hello', (5, 5), size=10),
        BoxItem([10, 20, 100, 50], (255, 0, 0), style='--')
    ]
    a, b = annotate(canvas, items), annotate(canvas, items)
    assert a.shape == canvas.shape
    np.testing.assert_array_equal(a, b)
    assert (a != 255).any()
    assert (a[20:51, 10:101, 0] > 200).any()


def test_wrap_text():
    lines = wrap_text('word ' * 60, 300, 10)
    assert len(lines) > 1
    assert all(len(line) * 0.6 * 10 * 100 / 72 <= 310 for line in lines)


def test_compose_object_clusters_and_pair(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    views = rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, (2, 14, 14))
    labels[1][labels[1] == 3] = 0  # cluster 3 only in view 1
    valid = [True, True, True, False]
    boxes = np.array([[0, 0, 100, 90], [20, 10, 128, 96]], np.float32)
    fig = compose_object_clusters(image, views, labels, valid, boxes,
                                  [False, True], panel_size=112,
                                  title='test')
    picture = render(fig)
    # margins 6 + original (149) + gap 8 + 2 framed views (116) + gaps
    assert picture.shape[1] == 6 + 149 + 8 + 116 + 8 + 116 + 6
    assert_not_blank(picture)
    mask = np.zeros((96, 128), bool)
    mask[10:40, 20:60] = True
    pair = compose_neighbour_pair(image, mask, boxes[0], image, mask,
                                  boxes[1], True, 0.9, 'q', 'n',
                                  panel_size=64)
    grid = render(tile([pair, pair, pair], cols=2, gap=8))
    cell = 3 + 85 + 6 + 85 + 3
    assert grid.shape[1] == 2 * cell + 8
    path = save_png(grid, str(tmp_path / 'grid'), colors=64)
    assert path.endswith('.png')
    back = load_png(path)
    assert back.shape == grid.shape
    assert np.unique(back.reshape(-1, 3), axis=0).shape[0] <= 64
