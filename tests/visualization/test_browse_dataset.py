# Copyright (c) cribo-mm contributors. All rights reserved.
"""tools/analysis/browse_dataset.py and the view-geometry figure."""
import os.path as osp

import numpy as np
import pytest
import torch

from cribo_mm.datasets.transforms.geometry import patch_centres
from cribo_mm.visualization import (compose_view_geometry, load_png,
                                    render, view_token_centres)
from tests.engine.tiny_config import DEMO_CONFIG

from .conftest import assert_not_blank, load_tool


def test_view_token_centres_follow_box_and_flip():
    boxes = np.array([[10., 20., 74., 52.], [10., 20., 74., 52.]])
    flips = np.array([False, True])
    in_original, in_view = view_token_centres(boxes, flips, (32, 64), 16)
    assert in_original.shape == (2, 8, 2) and in_view.shape == (8, 2)
    expected = patch_centres(
        torch.tensor(boxes, dtype=torch.float32), torch.tensor(flips),
        (32, 64), 16).transpose(-1, -2).numpy()
    np.testing.assert_allclose(in_original, expected)
    # view scale is 1: the first token of the plain view sits 7.5 px in
    # from the top-left corner, that of the flipped view at the top-right
    np.testing.assert_allclose(in_view[0], [7.5, 7.5])
    np.testing.assert_allclose(in_original[0, 0], [17.5, 27.5])
    np.testing.assert_allclose(in_original[1, 0], [74 - 8 - 0.5, 27.5])
    np.testing.assert_allclose(in_original[1, 3], in_original[0, 0])


def test_compose_view_geometry_draws_every_token():
    rng = np.random.default_rng(0)
    image = np.full((60, 80, 3), 128, np.uint8)
    views = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)] * 2
    boxes = np.array([[0., 0., 40., 40.], [30., 10., 80., 60.]])
    pixels, items = compose_view_geometry(
        image, views, boxes, np.array([False, True]), patch_size=8,
        height=120, title='t')
    boxes_drawn = [it for it in items if it['kind'] == 'box']
    assert len(boxes_drawn) == 2
    # original scaled by 2 (below the header): boxes scaled alike
    (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = (b['box']
                                                  for b in boxes_drawn)
    assert (ax2 - ax1, ay2 - ay1, bx2 - bx1, by2 - by1) == (80, 80, 100, 100)
    assert (bx1 - ax1, by1 - ay1) == (60, 20)
    assert boxes_drawn[1]['style'] == '--'
    texts = ' '.join(it['text'] for it in items if it['kind'] == 'text')
    assert '2 flip' in texts and 'flipped' in texts
    picture = render((pixels, items))
    assert picture.shape == pixels.shape
    with pytest.raises(ValueError, match='must match'):
        compose_view_geometry(image, views[:1], boxes, np.array([0, 1]))


def test_browse_dataset_on_demo_scenes(tmp_path):
    tool = load_tool('browse_dataset')
    files = tool.main([
        str(DEMO_CONFIG), '--indices', '0', '3', '--out-dir',
        str(tmp_path / 'out'), '--height', '120', '--grid',
        str(tmp_path / 'grid.png')
    ])
    assert [osp.basename(f) for f in files[:2]] == [
        '00000_00000_views.png', '00003_00003_views.png'
    ]
    pictures = [load_png(f) for f in files]
    for picture in pictures:
        assert_not_blank(picture)
    # three panels of height 120 side by side, a header above
    assert pictures[0].shape[0] > 120 and pictures[0].shape[1] > 3 * 120
    assert pictures[2].shape[0] == sum(p.shape[0] for p in pictures[:2]) + 4
    # seeded: the same image and seed give the same picture
    again = tool.main([
        str(DEMO_CONFIG), '--indices', '3', '--out-dir',
        str(tmp_path / 'again'), '--height', '120'
    ])
    np.testing.assert_array_equal(load_png(again[0]), pictures[1])
    with pytest.raises(IndexError, match='outside'):
        tool.main([str(DEMO_CONFIG), '--indices', '100000'])
