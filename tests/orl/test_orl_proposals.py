# Copyright (c) cribo-mm contributors. All rights reserved.
"""Selective search (ORL stage 2b): OpenCV contrib, seeded ranking."""
import numpy as np
import pytest

from cribo_mm.orl_mining import require_selective_search, selective_search


@pytest.fixture(scope='module')
def scene():
    """A 120 x 160 BGR image with a few flat rectangles on noise."""
    rng = np.random.default_rng(1)
    img = rng.integers(0, 40, size=(120, 160, 3)).astype(np.uint8)
    img[10:70, 20:90] = (200, 30, 30)
    img[50:110, 100:150] = (30, 200, 30)
    img[80:115, 10:60] = (30, 30, 220)
    return img


def test_boxes_are_inside_the_image(scene):
    boxes = np.array(selective_search(scene))
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) > 3
    assert boxes.dtype.kind == 'i'
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] > 0).all()
    assert (boxes[:, 0] + boxes[:, 2] <= 160).all()
    assert (boxes[:, 1] + boxes[:, 3] <= 120).all()
    # a coloured rectangle is found as a region
    assert [20, 10, 70, 60] in boxes.tolist()


def test_seeded_order_is_reproducible(scene):
    cv2 = require_selective_search()
    a = selective_search(scene, seed=0)
    cv2.setNumThreads(2)
    b = selective_search(scene, seed=0)
    assert a == b
    # another seed shuffles the same set of boxes
    c = selective_search(scene, seed=5)
    assert sorted(map(tuple, c)) == sorted(map(tuple, a))


def test_quality_mode_and_bad_input(scene):
    assert len(selective_search(scene, 'quality')) >= len(
        selective_search(scene, 'fast'))
    with pytest.raises(ValueError, match='mode'):
        selective_search(scene, 'slow')
    with pytest.raises(ValueError, match='uint8'):
        selective_search(scene.astype(np.float32))
    with pytest.raises(ValueError, match=r'\(H, W, 3\)'):
        selective_search(scene[..., 0])


def test_missing_contrib_modules_give_a_clear_error(monkeypatch):
    import cv2
    monkeypatch.delattr(cv2, 'ximgproc')
    with pytest.raises(ImportError, match='opencv-contrib-python-headless'):
        require_selective_search()
