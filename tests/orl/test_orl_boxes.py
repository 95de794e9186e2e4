# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL box semantics on hand-built cases: filter, jitter, pair selection."""
import numpy as np
import pytest

from cribo_mm.datasets.orl.boxes import box_iou, crop_resize, jitter_box
from cribo_mm.orl_mining.correspondence import (filter_proposals,
                                                select_top_pairs)
from cribo_mm.orl_mining.knn import knn_from_embeddings


def test_box_iou_xywh():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 10, 10]])
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0., 1.]])


def test_filter_min_side_and_aspect_ratio():
    boxes = [
        [0, 0, 95, 200],  # width < 96
        [0, 0, 200, 95],  # height < 96
        [0, 0, 300, 100],  # w/h = 3: kept (<= 3)
        [400, 0, 301, 100],  # w/h > 3
        [0, 400, 96, 289],  # h/w > 3
        [500, 500, 96, 96],  # exactly the minimum: kept
    ]
    assert filter_proposals(boxes) == [[0, 0, 300, 100], [500, 500, 96, 96]]


def test_filter_greedy_overlap_in_proposal_order():
    boxes = [
        [0, 0, 100, 100],
        [50, 0, 100, 100],  # IoU 1/3 with the first: kept
        [10, 0, 100, 100],  # IoU 0.82 with the first: dropped
        # IoU exactly 0.5 with the first (100x100 vs 100x200 sharing it)
        [0, 0, 100, 200],
    ]
    kept = filter_proposals(boxes)
    assert kept == [boxes[0], boxes[1], boxes[3]]
    # order matters: the later big box is dropped against a kept one,
    # not the other way round
    assert filter_proposals([boxes[2], boxes[0]]) == [boxes[2]]
    # a stricter threshold drops the IoU-0.5 box too
    assert filter_proposals(boxes, max_iou=0.4) == [boxes[0], boxes[1]]


def test_filter_keeps_at_most_max_num_and_falls_back_to_first():
    boxes = [[200 * i, 0, 100, 100] for i in range(150)]
    kept = filter_proposals(boxes)
    assert len(kept) == 100 and kept == boxes[:100]
    assert len(filter_proposals(boxes, max_num=3)) == 3
    tiny = [[5, 5, 10, 10], [0, 0, 20, 20]]
    assert filter_proposals(tiny) == [[5, 5, 10, 10]]
    with pytest.raises(ValueError, match='non-empty'):
        filter_proposals([])


def test_select_top_pairs_count_and_order():
    rng = np.random.default_rng(0)
    sim = rng.normal(size=(25, 7))
    pairs = select_top_pairs(sim)
    assert len(pairs) == 2  # floor(0.1 * 25)
    flat = np.sort(sim.reshape(-1))[::-1]
    assert [sim[a, b] for a, b in pairs] == list(flat[:2])
    # fewer than 10 query boxes: one pair
    assert len(select_top_pairs(sim[:9])) == 1
    assert len(select_top_pairs(sim[:1])) == 1
    assert len(select_top_pairs(sim, ratio=0.5)) == 12


def test_select_top_pairs_allows_repeated_boxes():
    # query box 0 is the best match for both neighbour boxes
    sim = np.full((20, 2), -1.)
    sim[0] = [0.9, 0.8]
    assert select_top_pairs(sim) == [(0, 0), (0, 1)]


def test_jitter_box_constraints():
    rng = np.random.default_rng(1)
    box = [100., 80., 60., 40.]
    for _ in range(200):
        j = jitter_box(box, 320, 240, rng)
        x, y, w, h = j
        assert x >= 0 and y >= 0 and x + w <= 320 and y + h <= 240
        if j != box:
            assert box_iou([j], [box])[0, 0] > 0.5
            assert 0.5 - 1e-9 <= w * h / (60 * 40) <= 2 + 1e-9
            assert 0.5 - 1e-9 <= w / h <= 2 + 1e-9
            assert abs(x + w / 2 - 130) <= 0.5 * 60 + 1e-9
            assert abs(y + h / 2 - 100) <= 0.5 * 40 + 1e-9


def test_jitter_box_falls_back_after_max_attempts():
    # the box fills the image: any larger/shifted box leaves it, so only
    # shrunken, well-centred candidates are accepted
    rng = np.random.default_rng(0)
    assert jitter_box([0, 0, 50, 50], 50, 50, rng, area_range=(1.5, 2.)) \
        == [0., 0., 50., 50.]
    assert jitter_box([0, 0, 50, 50], 50, 50, rng, max_attempts=0) == \
        [0., 0., 50., 50.]


def test_jitter_box_is_varied():
    rng = np.random.default_rng(2)
    outs = {
        tuple(np.round(jitter_box([100, 100, 80, 80], 400, 400, rng), 3))
        for _ in range(20)
    }
    assert len(outs) > 10


def test_crop_resize_shape_and_content():
    img = np.zeros((50, 60, 3), np.uint8)
    img[10:20, 30:40] = 255
    out = crop_resize(img, [30, 10, 10, 10], 16)
    assert out.shape == (16, 16, 3) and out.min() == 255
    assert crop_resize(img, [55, 45, 100, 100], 8).shape == (8, 8, 3)


def test_knn_from_embeddings_drops_self():
    emb = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [-1, 0]],
                   np.float64)
    knn = knn_from_embeddings(emb, k=2)
    assert knn.shape == (5, 2)
    assert knn[0].tolist() == [1, 3]
    assert knn[2].tolist() == [3, 1]
    assert (knn != np.arange(5)[:, None]).all()
    # duplicates: the query itself is still excluded
    dup = knn_from_embeddings(np.ones((4, 3)), k=3)
    assert [sorted(r) for r in dup.tolist()] == [[1, 2, 3], [0, 2, 3],
                                                 [0, 1, 3], [0, 1, 2]]


def _knn_full_sort(emb, k):
    """Reference: a full stable sort of every row, the query first."""
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = emb @ emb.T
    np.fill_diagonal(sim, np.inf)
    return np.argsort(-sim, axis=1, kind='stable')[:, 1:k + 1]


@pytest.mark.parametrize('block_size', [1, 3, 7, 64])
def test_knn_blocks_equal_a_full_stable_sort_with_ties(block_size):
    rng = np.random.default_rng(0)
    # +-1 vectors: similarities are exact multiples of 1/4 whatever the
    # summation order, so there are many exact ties (also at the k-th
    # place) and duplicated rows
    emb = rng.choice([-1., 1.], size=(45, 4))
    for k in (1, 4, 10):
        np.testing.assert_array_equal(
            knn_from_embeddings(emb, k=k, block_size=block_size),
            _knn_full_sort(emb, k))
    cont = rng.normal(size=(50, 8))
    np.testing.assert_array_equal(
        knn_from_embeddings(cont, k=10, block_size=block_size),
        _knn_full_sort(cont, 10))
