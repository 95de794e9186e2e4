# Copyright (c) cribo-mm contributors. All rights reserved.
"""Tensor-level tests of the dense NN retrieval library (known answers)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cribo_mm.evaluation.dense_nn import (ExactKNNIndex, build_knn_index,
                                          faiss_available,
                                          knn_label_transfer, knn_search,
                                          patch_label_distributions,
                                          predict_segmentation,
                                          sample_memory_patches)


def _one_hot_rows(labels, num_classes):
    return F.one_hot(labels, num_classes).float()


# ---------------------------------------------------------------- labels


def test_patch_label_distributions_known_values():
    labels = torch.tensor([[0, 0, 1, 1],
                           [0, 1, 1, 1],
                           [2, 2, 255, 255],
                           [2, 255, 255, 255]])
    dist = patch_label_distributions(labels, 3, 2, ignore_index=255)
    assert dist.shape == (2, 2, 3)
    torch.testing.assert_close(dist[0, 0], torch.tensor([0.75, 0.25, 0.]))
    torch.testing.assert_close(dist[0, 1], torch.tensor([0., 1., 0.]))
    torch.testing.assert_close(dist[1, 0], torch.tensor([0., 0., 1.]))
    torch.testing.assert_close(dist[1, 1], torch.zeros(3))  # all ignored
    class0 = patch_label_distributions(
        labels[None], 3, 2, ignore_index=255, ignore_mode='class0')
    assert class0.shape == (1, 2, 2, 3)
    torch.testing.assert_close(class0[0, 1, 0],
                               torch.tensor([0.25, 0., 0.75]))
    torch.testing.assert_close(class0[0, 1, 1], torch.tensor([1., 0., 0.]))
    torch.testing.assert_close(class0.sum(-1), torch.ones(1, 2, 2))


def test_patch_label_distributions_batch_and_errors():
    labels = torch.randint(0, 5, (3, 8, 12))
    dist = patch_label_distributions(labels, 5, 4)
    assert dist.shape == (3, 2, 3, 5)
    torch.testing.assert_close(dist.sum(-1), torch.ones(3, 2, 3))
    # batch entries are independent of each other
    torch.testing.assert_close(dist[1], patch_label_distributions(
        labels[1], 5, 4))
    with pytest.raises(ValueError):
        patch_label_distributions(labels, 5, 5)
    with pytest.raises(ValueError):
        patch_label_distributions(labels, 5, 4, ignore_mode='nope')


def test_sample_memory_patches_same_count_and_rarity():
    # 4x4 patches, one patch holds only a rare class (score 1 * u against
    # 11 * u for the others), the last row is unlabelled (score inf)
    dist = torch.zeros(1, 16, 3)
    dist[0, :, 0] = 1
    dist[0, 5] = torch.tensor([0., 1., 0.])
    dist[0, 12:] = 0
    hits = 0
    for seed in range(100):
        gen = torch.Generator().manual_seed(seed)
        keep = sample_memory_patches(dist, 3, gen)
        assert keep.shape == (1, 3)
        assert len(set(keep[0].tolist())) == 3
        assert not set(keep[0].tolist()) & {12, 13, 14, 15}
        hits += int(5 in keep[0].tolist())
    assert hits >= 90  # the rare-class patch is nearly always kept
    # unlabelled patches come last; everything when asking for all
    keep = sample_memory_patches(dist, 12, torch.Generator().manual_seed(0))
    assert keep[0].tolist() == list(range(12))
    assert sample_memory_patches(dist, 99).tolist() == [list(range(16))]
    # (B, h, w, C) input and reproducibility with a seed
    grid = dist.view(1, 4, 4, 3).expand(2, -1, -1, -1)
    a = sample_memory_patches(grid, 4, torch.Generator().manual_seed(3))
    b = sample_memory_patches(grid, 4, torch.Generator().manual_seed(3))
    assert a.shape == (2, 4) and torch.equal(a, b)


# ------------------------------------------------------------- retrieval


def test_knn_search_matches_brute_force():
    gen = torch.Generator().manual_seed(0)
    memory = torch.randn(300, 16, generator=gen)
    query = torch.randn(50, 16, generator=gen)
    sim, idx = knn_search(query, memory, k=7, chunk_size=13,
                          memory_chunk_size=41)
    full = F.normalize(query, dim=1) @ F.normalize(memory, dim=1).T
    ref_sim, ref_idx = full.topk(7, dim=1)
    torch.testing.assert_close(sim, ref_sim)
    assert torch.equal(idx, ref_idx)
    # k larger than the memory is clipped
    sim, idx = knn_search(query, memory[:5], k=30)
    assert sim.shape == (50, 5)


def test_one_hot_features_recover_the_labels():
    num_classes = 4
    gen = torch.Generator().manual_seed(1)
    mem_cls = torch.randint(0, num_classes, (200, ), generator=gen)
    qry_cls = torch.randint(0, num_classes, (60, ), generator=gen)
    scores = knn_label_transfer(
        _one_hot_rows(qry_cls, num_classes),
        _one_hot_rows(mem_cls, num_classes),
        _one_hot_rows(mem_cls, num_classes),
        k=30,
        temperature=0.02)
    assert scores.shape == (60, num_classes)
    assert torch.equal(scores.argmax(1), qry_cls)
    torch.testing.assert_close(scores, _one_hot_rows(qry_cls, num_classes))


def test_permuted_memory_gives_the_same_result():
    gen = torch.Generator().manual_seed(2)
    memory = torch.randn(500, 24, generator=gen)
    labels = torch.softmax(torch.randn(500, 6, generator=gen), dim=1)
    query = torch.randn(80, 24, generator=gen)
    perm = torch.randperm(500, generator=gen)
    ref = knn_label_transfer(query, memory, labels, k=30)
    out = knn_label_transfer(query, memory[perm], labels[perm], k=30)
    torch.testing.assert_close(out, ref)


def test_constant_feature_gives_the_majority_class():
    labels = torch.tensor([0, 2, 2, 1, 2, 0, 2, 1, 2, 2])
    memory = torch.ones(10, 8)
    scores = knn_label_transfer(
        torch.ones(5, 8), memory, _one_hot_rows(labels, 3), k=30)
    torch.testing.assert_close(scores,
                               torch.tensor([[0.2, 0.2, 0.6]]).expand(5, 3))
    assert scores.argmax(1).tolist() == [2] * 5


def test_softmax_weighting_and_temperature():
    memory = torch.tensor([[1., 0.], [0.6, 0.8], [0., 1.]])
    labels = torch.eye(3)
    query = torch.tensor([[1., 0.]])
    sims = torch.tensor([1.0, 0.6, 0.0])
    for temp in (0.02, 0.5, 10.0):
        out = knn_label_transfer(query, memory, labels, k=3,
                                 temperature=temp)
        torch.testing.assert_close(out[0], torch.softmax(sims / temp, 0))
    out = knn_label_transfer(query, memory, labels, k=1)
    torch.testing.assert_close(out[0], torch.tensor([1., 0., 0.]))


@pytest.mark.parametrize('chunk_size,memory_chunk_size',
                         [(1, 7), (17, 64), (1000, 100000), (64, 1)])
def test_invariance_to_chunk_sizes(chunk_size, memory_chunk_size):
    gen = torch.Generator().manual_seed(3)
    memory = torch.randn(400, 32, generator=gen)
    labels = torch.softmax(torch.randn(400, 5, generator=gen), dim=1)
    query = torch.randn(120, 32, generator=gen)
    ref = knn_label_transfer(query, memory, labels, k=30,
                             chunk_size=4096, memory_chunk_size=1 << 20)
    out = knn_label_transfer(query, memory, labels, k=30,
                             chunk_size=chunk_size,
                             memory_chunk_size=memory_chunk_size)
    torch.testing.assert_close(out, ref)


def test_prebuilt_index_and_prenormalised_memory():
    gen = torch.Generator().manual_seed(4)
    memory = F.normalize(torch.randn(100, 8, generator=gen), dim=1)
    labels = torch.softmax(torch.randn(100, 3, generator=gen), dim=1)
    query = torch.randn(20, 8, generator=gen)
    index = build_knn_index(memory, 'exact', 16, normalize=False)
    assert isinstance(index, ExactKNNIndex) and len(index) == 100
    out = knn_label_transfer(F.normalize(query, dim=1), index, labels)
    torch.testing.assert_close(out, knn_label_transfer(query, memory, labels))
    with pytest.raises(ValueError):
        knn_label_transfer(query, index, labels[:50])
    with pytest.raises(ValueError):
        build_knn_index(memory, 'annoy')


@pytest.mark.parametrize('search_dtype', ['bfloat16', 'float16'])
@pytest.mark.parametrize('normalize', [True, False])
def test_low_precision_search_equals_float32(search_dtype, normalize):
    gen = torch.Generator().manual_seed(8)
    memory = torch.randn(3000, 32, generator=gen)
    if not normalize:
        memory = F.normalize(memory, dim=1)
    memory[2000:2100] = memory[:100]  # exact duplicates in another block
    near = memory[:50] + 0.01 * torch.randn(50, 32, generator=gen)
    query = torch.cat([near, torch.randn(150, 32, generator=gen)])
    if not normalize:
        query = F.normalize(query, dim=1)
    exact = build_knn_index(memory, 'exact', 700, normalize,
                            search_dtype='float32')
    fast = build_knn_index(memory, 'exact', 700, normalize,
                           search_dtype=search_dtype)
    for k in (1, 10):
        ref_sim, ref_idx = knn_search(query, exact, k, chunk_size=50)
        sim, idx = knn_search(query, fast, k, chunk_size=50)
        assert torch.equal(idx, ref_idx) and torch.equal(sim, ref_sim)
    assert exact.stats.queries == 0
    assert fast.stats.queries == 400
    # the 50 queries next to duplicated rows tie and fall back, most others
    # are proven
    assert 50 <= fast.stats.fallbacks < 300
    labels = torch.softmax(torch.randn(3000, 4, generator=gen), dim=1)
    assert torch.equal(
        knn_label_transfer(query, fast, labels, k=10),
        knn_label_transfer(query, exact, labels, k=10))


@pytest.mark.skipif(not faiss_available(), reason='faiss is not installed')
def test_faiss_backend_agrees_with_exact():
    gen = torch.Generator().manual_seed(5)
    memory = torch.randn(1000, 32, generator=gen)
    labels = torch.softmax(torch.randn(1000, 7, generator=gen), dim=1)
    query = torch.randn(200, 32, generator=gen)
    exact_sim, exact_idx = knn_search(query, memory, 30, backend='exact')
    faiss_sim, faiss_idx = knn_search(query, memory, 30, backend='faiss')
    torch.testing.assert_close(faiss_sim, exact_sim, atol=1e-5, rtol=1e-5)
    assert (faiss_idx == exact_idx).float().mean() > 0.99
    torch.testing.assert_close(
        knn_label_transfer(query, memory, labels, backend='faiss'),
        knn_label_transfer(query, memory, labels, backend='exact'),
        atol=1e-4,
        rtol=1e-4)


class _FakeFaiss:
    """Numpy stand-in with the faiss calls the adapter uses."""

    class IndexFlatIP:

        def __init__(self, dim):
            self.dim = dim
            self.data = None

        def add(self, data):
            assert data.dtype == np.float32 and data.shape[1] == self.dim
            self.data = data.copy()

        def search(self, query, k):
            sim = query @ self.data.T
            idx = np.argsort(-sim, axis=1, kind='stable')[:, :k]
            return np.take_along_axis(sim, idx, 1), idx.astype(np.int64)

    @staticmethod
    def normalize_L2(data):
        data /= np.linalg.norm(data, axis=1, keepdims=True)


def test_faiss_adapter_with_a_stand_in_module(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, 'faiss', _FakeFaiss)
    gen = torch.Generator().manual_seed(6)
    memory = torch.randn(300, 16, generator=gen)
    labels = torch.softmax(torch.randn(300, 4, generator=gen), dim=1)
    query = torch.randn(40, 16, generator=gen)
    index = build_knn_index(memory, 'faiss')
    assert len(index) == 300
    sim, idx = knn_search(query, index, 30, chunk_size=7)
    ref_sim, ref_idx = knn_search(query, memory, 30)
    torch.testing.assert_close(sim, ref_sim)
    assert torch.equal(idx, ref_idx)
    torch.testing.assert_close(
        knn_label_transfer(query, memory, labels, backend='faiss'),
        knn_label_transfer(query, memory, labels))
    assert knn_search(query, memory[:3], 30, backend='faiss')[0].shape == (
        40, 3)


def test_faiss_backend_missing_raises():
    if faiss_available():
        pytest.skip('faiss is installed')
    with pytest.raises(ImportError, match='faiss'):
        build_knn_index(torch.randn(4, 2), 'faiss')


# ------------------------------------------------------------ prediction


def test_predict_segmentation_upsamples_and_argmaxes():
    scores = torch.zeros(1, 2, 2, 3)
    scores[0, 0, 0, 1] = 1  # top-left class 1
    scores[0, 0, 1, 2] = 1  # top-right class 2
    scores[0, 1, :, 0] = 1  # bottom row class 0
    pred = predict_segmentation(scores, (32, 48))
    assert pred.shape == (1, 32, 48) and pred.dtype == torch.long
    assert pred[0, 0, 0] == 1 and pred[0, 0, -1] == 2
    assert (pred[0, -1] == 0).all()
    assert predict_segmentation(scores[0], (4, 4)).shape == (4, 4)
