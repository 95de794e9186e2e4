# Copyright (c) cribo-mm contributors. All rights reserved.
import io

import pytest
import torch
import torch.nn.functional as F

from cribo_mm.models.utils import memory_bank as mb
from cribo_mm.models.utils.memory_bank import (CrIBoMemoryBank,
                                               RetrievalResult,
                                               all_gather_variable,
                                               fifo_update, pad_to_length,
                                               retrieve_cycle_consistent,
                                               unpad_and_concat)
from tests.fixtures import fixture_cases

OUTPUT_NAMES = ('nn', 'bootstrap_centroid_mask', 'centroids_indices_knn',
                'nn2', 'centroids_indices_knn2', 'bootstrap_centroid_mask2')


BANK_CASES = fixture_cases('memory_bank.pt')


def _stored_cls(case):
    inputs = case['inputs']
    batch = inputs['centroids_per_view'].shape[0]
    cls = inputs['teacher_cls'].reshape(2, batch, -1)
    if case['hparams']['normalized_matching']:
        cls = F.normalize(cls, dim=2)
    return cls


@pytest.mark.parametrize('search_dtype', [None, 'bfloat16', 'float16'])
@pytest.mark.parametrize('chunk_size', [None, 7])
@pytest.mark.parametrize('case', BANK_CASES)
def test_pure_functions_match_reference(case, chunk_size, search_dtype):
    inputs, outputs = case['inputs'], case['outputs']
    after = case['queues_after']
    queue = inputs['centroids_queue'].clone()
    cls_queue = inputs['cls_queue'].clone()
    cpv = inputs['cpv_queue'].clone()
    result = retrieve_cycle_consistent(
        inputs['teacher_centroids_v1'],
        inputs['teacher_centroids_v2'],
        queue,
        int(cpv.sum()),
        normalized_matching=case['hparams']['normalized_matching'],
        chunk_size=chunk_size,
        search_dtype=search_dtype)
    for got, name in zip(result, OUTPUT_NAMES):
        assert got.dtype == outputs[name].dtype, name
        assert torch.equal(got, outputs[name]), name

    fifo_update(
        queue,
        cpv,
        inputs['teacher_centroids_v1'],
        inputs['teacher_centroids_v2'],
        inputs['centroids_per_view'],
        cls=cls_queue,
        new_cls=_stored_cls(case),
        chunk_size=chunk_size)
    assert torch.equal(queue, after['centroids_queue'])
    assert torch.equal(cpv, after['cpv_queue'])
    torch.testing.assert_close(
        cls_queue, after['cls_queue'], atol=1e-6, rtol=0)


@pytest.mark.parametrize('case', BANK_CASES)
def test_module_matches_reference(case):
    inputs, outputs = case['inputs'], case['outputs']
    after = case['queues_after']
    hp = case['hparams']
    bank = CrIBoMemoryBank(
        hp['queue_size'],
        hp['n_tokens'],
        hp['embed_dim'],
        normalized_matching=hp['normalized_matching'],
        chunk_size=5)
    bank.objects.copy_(inputs['centroids_queue'])
    bank.cls.copy_(inputs['cls_queue'])
    bank.objects_per_image.copy_(inputs['cpv_queue'])

    result = bank.retrieve(inputs['teacher_centroids_v1'],
                           inputs['teacher_centroids_v2'])
    assert isinstance(result, RetrievalResult)
    for got, name in zip(result, OUTPUT_NAMES):
        assert torch.equal(got, outputs[name]), name
    assert torch.equal(result.mask_v1, outputs['bootstrap_centroid_mask'])
    assert torch.equal(result.index_v2, outputs['centroids_indices_knn2'])

    bank.update(inputs['teacher_centroids_v1'], inputs['teacher_centroids_v2'],
                inputs['centroids_per_view'], cls=inputs['teacher_cls'])
    assert torch.equal(bank.objects, after['centroids_queue'])
    assert torch.equal(bank.objects_per_image,
                       after['cpv_queue'].to(torch.long))
    torch.testing.assert_close(
        bank.cls, after['cls_queue'], atol=1e-6, rtol=0)
    assert int(bank.num_inserted) == inputs['centroids_per_view'].shape[0]


def _hand_bank():
    # Bank of 3 slots in 2-D. Object 0 (x axis) finds slot 0, whose view-2
    # entry points back at view-2 object 0 -> consistent. Object 1 (y axis)
    # finds slot 1, whose view-2 entry points at view-2 object 0 -> broken.
    bank = torch.tensor([
        [[1., 0.1], [0.1, 1.], [-1., -1.]],
        [[2., 0.], [3., 0.2], [0., -1.]],
    ])
    v1 = torch.tensor([[5., 0.], [0., 2.]])
    v2 = torch.tensor([[1., 0.], [0., 1.]])
    return bank, v1, v2


def test_cycle_consistency_mask_by_hand():
    bank, v1, v2 = _hand_bank()
    res = retrieve_cycle_consistent(v1, v2, bank, 3)
    assert res.index_v1.tolist() == [0, 1]
    assert res.mask_v1.tolist() == [True, False]
    # View 2: object 0 -> slot 0 (view-1 entry x-ish -> object 0, ok);
    # object 1 (y) -> nearest of (1,0),(1,.067),(0,-1) is slot 1, whose
    # view-1 entry (0.1, 1) points at view-1 object 1 -> consistent.
    assert res.index_v2.tolist() == [0, 1]
    assert res.mask_v2.tolist() == [True, True]
    # Raw (un-normalised) entries of both views are returned.
    assert torch.equal(res.neighbours_v1, bank[:, [0, 1]])
    assert torch.equal(res.neighbours_v2, bank[:, [0, 1]])


def test_matching_ignores_slots_past_num_valid():
    bank, v1, v2 = _hand_bank()
    bank = bank.clone()
    bank[0, 2] = torch.tensor([0., 10.])  # perfect match for object 1
    res3 = retrieve_cycle_consistent(v1, v2, bank, 3)
    res2 = retrieve_cycle_consistent(v1, v2, bank, 2)
    assert res3.index_v1.tolist() == [0, 2]
    assert res2.index_v1.tolist() == [0, 1]


def test_normalized_matching_flag():
    bank = torch.stack([torch.tensor([[1., 0.], [10., 8.]])] * 2)
    query = torch.tensor([[1., 0.1]])
    # Cosine picks the aligned short vector, raw dot product the long one.
    assert retrieve_cycle_consistent(query, query, bank, 2,
                                     True).index_v1.item() == 0
    assert retrieve_cycle_consistent(query, query, bank, 2,
                                     False).index_v1.item() == 1


def test_chunked_retrieval_equals_full():
    gen = torch.Generator().manual_seed(0)
    bank = torch.randn(2, 300, 8, generator=gen)
    v1, v2 = torch.randn(2, 11, 8, generator=gen)
    full = retrieve_cycle_consistent(v1, v2, bank, 250, chunk_size=None)
    for chunk in (1, 16, 249, 1000):
        part = retrieve_cycle_consistent(v1, v2, bank, 250, chunk_size=chunk)
        for a, b in zip(full, part):
            assert torch.equal(a, b)


def test_empty_batch_retrieval():
    bank = torch.rand(2, 6, 4)
    res = retrieve_cycle_consistent(
        torch.zeros(0, 4), torch.zeros(0, 4), bank, 6)
    assert res.neighbours_v1.shape == (2, 0, 4)
    assert res.mask_v2.shape == (0, )


def _ids_bank(num_images, num_objects):
    """Bank whose entries encode their own slot index (view 2 negated)."""
    slots = num_images * num_objects
    ids = torch.arange(slots, dtype=torch.float32)[:, None].repeat(1, 2)
    objects = torch.stack([ids, -ids])
    return objects


def _new_objects(start, counts):
    num = int(sum(counts))
    ids = torch.arange(start, start + num,
                       dtype=torch.float32)[:, None].repeat(1, 2)
    return ids, -ids, torch.tensor(counts)


@pytest.mark.parametrize('chunk_size', [None, 1, 2])
def test_fifo_newest_first_and_stale_tail(chunk_size):
    objects = _ids_bank(num_images=4, num_objects=3)  # 12 slots
    per_image = torch.tensor([2, 3, 1, 3])
    cls = torch.arange(4.)[None, :, None].repeat(2, 1, 2)
    v1, v2, counts = _new_objects(100, [1, 2])
    new_cls = torch.full((2, 2, 2), 7.)
    fifo_update(objects, per_image, v1, v2, counts, cls, new_cls, chunk_size)
    # 3 new objects, then the 2 + 3 objects of the 2 newest old images;
    # slots 8.. keep their old content.
    expected = [100, 101, 102, 0, 1, 2, 3, 4, 8, 9, 10, 11]
    assert objects[0, :, 0].tolist() == expected
    assert objects[1, :, 0].tolist() == [-e for e in expected]
    assert per_image.tolist() == [1, 2, 2, 3]
    assert cls[0, :, 0].tolist() == [7., 7., 0., 1.]


def test_fifo_wrap_around_over_several_steps():
    objects = _ids_bank(num_images=3, num_objects=2)
    per_image = torch.tensor([2, 2, 2])
    images = [[0, 1], [2, 3], [4, 5]]  # newest first, ids per image
    next_id = 100
    for step_counts in ([1], [2, 1], [2], [1, 1], [2, 2]):
        v1, v2, counts = _new_objects(next_id, step_counts)
        batch = []
        for count in step_counts:
            batch.append(list(range(next_id, next_id + count)))
            next_id += count
        images = (batch + images)[:3]
        fifo_update(objects, per_image, v1, v2, counts, chunk_size=1)
        assert per_image.tolist() == [len(ids) for ids in images]
        flat = [i for ids in images for i in ids]
        assert objects[0, :len(flat), 0].tolist() == flat
        assert objects[1, :len(flat), 0].tolist() == [-i for i in flat]


@pytest.mark.parametrize('num_new', [3, 5])
def test_fifo_truncates_when_batch_fills_bank(num_new):
    objects = _ids_bank(num_images=3, num_objects=2)
    before = objects.clone()
    per_image = torch.tensor([2, 2, 2])
    counts = [2, 1, 1, 2, 2][:num_new]
    v1, v2, counts = _new_objects(100, counts)
    fifo_update(objects, per_image, v1, v2, counts)
    assert per_image.tolist() == [2, 1, 1]
    assert objects[0, :4, 0].tolist() == [100, 101, 102, 103]
    assert torch.equal(objects[:, 4:], before[:, 4:])


def test_fifo_rejects_overflow():
    objects = _ids_bank(num_images=2, num_objects=2)
    v1, v2, counts = _new_objects(0, [3])
    with pytest.raises(ValueError):
        fifo_update(objects, torch.tensor([2, 2]), v1, v2, counts)


def test_shift_right_matches_clone():
    gen = torch.Generator().manual_seed(1)
    for length, offset, chunk in [(10, 3, None), (10, 3, 2), (10, 3, 3),
                                  (10, 3, 4), (7, 1, 5), (5, 8, 2),
                                  (0, 4, None), (12, 8, 1)]:
        buf = torch.randn(2, 20, 3, generator=gen)
        expected = buf.clone()
        expected[:, offset:offset + length] = buf[:, :length].clone()
        mb._shift_right(buf, length, offset, 1, chunk)
        assert torch.equal(buf, expected)


def test_pad_and_unpad():
    a = torch.arange(6.).reshape(3, 2)
    b = torch.arange(10., 12.).reshape(1, 2)
    empty = torch.zeros(0, 2)
    padded = [pad_to_length(t, 3) for t in (a, b, empty)]
    assert all(p.shape == (3, 2) for p in padded)
    assert padded[0] is a
    assert torch.equal(padded[1][1:], torch.zeros(2, 2))
    out = unpad_and_concat(padded, [3, 1, 0])
    assert torch.equal(out, torch.cat([a, b]))
    with pytest.raises(ValueError):
        pad_to_length(a, 2)


class _FakeTwoRanks:
    """Stands in for ``mmengine.dist`` with a second rank holding ``other``.

    ``all_gather`` answers the length query with both lengths and the data
    call with the local tensor plus the other rank's rows padded to the
    same length.
    """

    def __init__(self, others):
        self.others = list(others)
        self.padded_lengths = []

    def get_world_size(self, group=None):
        return 2

    def broadcast(self, tensor, src=0, group=None):
        pass

    def all_gather(self, tensor, group=None):
        other = self.others[0]
        if tensor.dtype == torch.long and tensor.shape == (1, ):
            return [tensor, torch.tensor([other.shape[0]])]
        self.others.pop(0)
        self.padded_lengths.append(tensor.shape[0])
        return [tensor, pad_to_length(other.to(tensor.dtype), tensor.shape[0])]


def test_all_gather_variable_two_ranks(monkeypatch):
    local = torch.arange(4.).reshape(2, 2)
    other = torch.arange(10., 20.).reshape(5, 2)
    fake = _FakeTwoRanks([other])
    monkeypatch.setattr(mb, 'dist', fake)
    out = all_gather_variable(local)
    assert torch.equal(out, torch.cat([local, other]))
    assert fake.padded_lengths == [5]


def test_all_gather_variable_single_process():
    t = torch.rand(3, 4)
    assert all_gather_variable(t) is t


def test_update_gathers_ranks_in_order(monkeypatch):
    bank = CrIBoMemoryBank(4, 2, 2, store_cls=True)
    local = torch.tensor([[1., 1.], [2., 2.], [3., 3.]])
    other = torch.tensor([[4., 4.]])
    other_pairs = torch.stack([other, -other], dim=1)
    other_counts = torch.tensor([1])
    other_cls = torch.full((1, 2, 2), 9.)
    fake = _FakeTwoRanks([other_pairs, other_counts, other_cls])
    monkeypatch.setattr(mb, 'dist', fake)
    bank.update(local, -local, torch.tensor([2, 1]), cls=torch.ones(4, 2))
    assert bank.objects[0, :4].tolist() == [[1., 1.], [2., 2.], [3., 3.],
                                            [4., 4.]]
    assert bank.objects[1, :4].tolist() == [[-1., -1.], [-2., -2.],
                                            [-3., -3.], [-4., -4.]]
    assert bank.objects_per_image.tolist() == [2, 1, 1, 2]
    assert int(bank.num_inserted) == 3
    assert torch.equal(bank.cls[:, 2], torch.full((2, 2), 9.))


def test_initial_state_and_fill():
    bank = CrIBoMemoryBank(5, 3, 4)
    assert bank.objects.shape == (2, 15, 4)
    assert bank.cls.shape == (2, 5, 4)
    assert bank.objects.dtype == torch.float32
    assert 0 <= float(bank.objects.min()) and float(bank.objects.max()) < 1
    assert bank.objects_per_image.tolist() == [3] * 5
    assert float(bank.fill) == 0.0
    assert bank.fill.dtype == torch.float32 and bank.fill.dim() == 0
    assert bank.fill_stats == dict(
        real_images=0,
        real_fraction=0.0,
        valid_objects=15,
        real_objects=0,
        real_object_fraction=0.0)
    v = torch.randn(3, 4)
    bank.update(v, v, torch.tensor([2, 1]), cls=torch.randn(4, 4))
    fill = bank.fill_stats
    assert float(bank.fill) == pytest.approx(0.4)
    assert fill['real_images'] == 2 and fill['real_objects'] == 3
    assert fill['valid_objects'] == 3 + 3 * 3
    for _ in range(3):
        bank.update(v, v, torch.tensor([2, 1]), cls=torch.randn(4, 4))
    assert bank.fill_stats['real_images'] == 5
    assert float(bank.fill) == 1.0
    assert bank.fill_stats['real_fraction'] == 1.0
    assert bank.fill_stats['real_object_fraction'] == 1.0


def test_fp16_storage():
    gen = torch.Generator().manual_seed(3)
    bank16 = CrIBoMemoryBank(6, 4, 8, dtype='float16')
    bank32 = CrIBoMemoryBank(6, 4, 8)
    assert bank16.objects.dtype == torch.float16
    assert bank16.cls.dtype == torch.float16
    bank32.objects.copy_(bank16.objects)
    bank32.cls.copy_(bank16.cls)
    v1, v2 = torch.randn(2, 5, 8, generator=gen)
    for bank in (bank16, bank32):
        bank.update(v1, v2, torch.tensor([3, 2]), cls=torch.randn(4, 8))
    torch.testing.assert_close(
        bank16.objects.float(), bank32.objects, atol=1e-2, rtol=1e-3)
    q1, q2 = torch.randn(2, 7, 8, generator=gen)
    r16, r32 = bank16.retrieve(q1, q2), bank32.retrieve(q1, q2)
    assert r16.neighbours_v1.dtype == torch.float32
    assert torch.equal(r16.neighbours_v1,
                       bank16.objects[:, r16.index_v1].float())
    # Storage halves the bytes of the bank.
    assert (bank16.objects.element_size() * 2 ==
            bank32.objects.element_size())
    assert r16.index_v1.shape == r32.index_v1.shape == (7, )


def test_store_cls_false():
    bank = CrIBoMemoryBank(3, 2, 4, store_cls=False)
    assert bank.cls is None
    assert 'cls' not in bank.state_dict()
    v = torch.randn(2, 4)
    bank.update(v, v, torch.tensor([2]))
    assert bank.objects_per_image.tolist() == [2, 2, 2]
    with pytest.raises(ValueError):
        CrIBoMemoryBank(3, 2, 4).update(v, v, torch.tensor([2]))


def test_checkpoint_round_trip():
    bank = CrIBoMemoryBank(4, 3, 5, dtype='fp16')
    v = torch.randn(4, 5)
    bank.update(v, -v, torch.tensor([3, 1]), cls=torch.randn(4, 5))
    state = bank.state_dict()
    assert set(state) == {'objects', 'cls', 'objects_per_image',
                          'num_inserted'}
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    fresh = CrIBoMemoryBank(4, 3, 5, dtype='fp16')
    fresh.load_state_dict(loaded)
    for key, value in bank.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    q1, q2 = torch.randn(2, 3, 5)
    for a, b in zip(bank.retrieve(q1, q2), fresh.retrieve(q1, q2)):
        assert torch.equal(a, b)


def test_registered_in_models():
    from cribo_mm.registry import MODELS
    bank = MODELS.build(
        dict(type='CrIBoMemoryBank', num_images=2, num_objects=2,
             embed_dim=3))
    assert isinstance(bank, CrIBoMemoryBank)


def _planted_bank(gen, slots=900, dim=24, objects=40):
    """A bank with duplicated rows and entries planted near the queries."""
    bank = torch.randn(2, slots, dim, generator=gen)
    bank[:, 600:640] = bank[:, 100:140]  # exact duplicates, other chunk
    v1 = torch.randn(objects, dim, generator=gen)
    v2 = v1 + 0.2 * torch.randn(objects, dim, generator=gen)
    bank[0, 100:140:2] = v1[::2] * 3  # same direction, other norm
    bank[1, 100:140:2] = v2[::2]
    bank[0, 600:640:2] = v1[::2] * 3
    return bank, v1, v2


@pytest.mark.parametrize('normalized', [True, False])
@pytest.mark.parametrize('search_dtype', ['bfloat16', 'float16'])
def test_low_precision_search_equals_fp32(search_dtype, normalized):
    gen = torch.Generator().manual_seed(11)
    bank, v1, v2 = _planted_bank(gen)
    ref = retrieve_cycle_consistent(
        v1, v2, bank, 880, normalized, chunk_size=256, search_dtype=None)
    stats = mb.SearchStats()
    got = retrieve_cycle_consistent(
        v1, v2, bank, 880, normalized, chunk_size=256,
        search_dtype=search_dtype, stats=stats)
    for a, b, name in zip(got, ref, OUTPUT_NAMES):
        assert torch.equal(a, b), name
    assert stats.queries == 80  # both views searched in low precision
    if normalized:
        # the planted duplicates (rows 100:140 and 600:640) tie exactly:
        # those queries fall back, and the earlier slot wins as in fp32
        assert stats.fallbacks >= 20
        assert bool((got.index_v1[::2] < 600).all())


def test_bank_search_dtype_switch_and_stats():
    gen = torch.Generator().manual_seed(12)
    bank, v1, v2 = _planted_bank(gen)
    module = CrIBoMemoryBank(30, 30, 24, store_cls=False, chunk_size=256,
                             search_dtype='bfloat16')
    module.objects.copy_(bank)
    fast = module.retrieve(v1, v2)
    assert module.last_search_stats.queries == 80
    assert module.last_search_stats.fallbacks >= 20
    module.retrieve(v1, v2)
    assert module.search_stats.queries == 160
    module.search_dtype = 'float32'
    exact = module.retrieve(v1, v2)
    assert module.last_search_stats.queries == 0
    for a, b in zip(fast, exact):
        assert torch.equal(a, b)
    assert "search_dtype='float32'" in repr(module)
    with pytest.raises(ValueError, match='int8'):
        CrIBoMemoryBank(4, 2, 8, search_dtype='int8')


def _fresh_search_keys(bank_module, dtype):
    keys = torch.empty(bank_module.objects.shape, dtype=dtype)
    for view in range(2):
        mb.normalize_converted(bank_module.objects[view], keys[view])
    return keys


@pytest.mark.parametrize('storage', ['float32', 'float16'])
def test_cached_search_keys_follow_the_bank(storage):
    """The cached low-precision copy shifts with the bank: over several
    steps it equals a fresh conversion, and the results equal those of a
    bank without the cache and of the fp32 search."""
    gen = torch.Generator().manual_seed(13)
    planted, v1, v2 = _planted_bank(gen)
    banks = {}
    for name, dtype, cache in [('cached', 'bfloat16', True),
                               ('uncached', 'bfloat16', False),
                               ('fp32', 'float32', True)]:
        banks[name] = CrIBoMemoryBank(30, 30, 24, store_cls=False,
                                      chunk_size=256, dtype=storage,
                                      search_dtype=dtype,
                                      cache_search_keys=cache)
        banks[name].objects.copy_(planted)
    assert banks['fp32'].search_keys() is None
    assert banks['uncached'].search_keys() is None
    for step in range(4):
        counts = torch.tensor([7, 30, 3])
        new1 = torch.randn(40, 24, generator=gen)
        new2 = new1 + 0.1 * torch.randn(40, 24, generator=gen)
        results = {
            name: bank.retrieve(new1, new2)
            for name, bank in banks.items()
        }
        for name in ('uncached', 'fp32'):
            for a, b in zip(results['cached'], results[name]):
                assert torch.equal(a, b), (step, name)
        for bank in banks.values():
            bank.update(new1, new2, counts)
        cached = banks['cached']
        assert cached._current_search_keys() is not None  # kept, shifted
        assert torch.equal(cached.search_keys(),
                           _fresh_search_keys(cached, torch.bfloat16))


def test_cached_search_keys_rebuilt_after_outside_writes():
    gen = torch.Generator().manual_seed(14)
    planted, v1, v2 = _planted_bank(gen)
    bank = CrIBoMemoryBank(30, 30, 24, store_cls=False, chunk_size=256,
                           search_dtype='bfloat16')
    first = bank.search_keys()
    assert first is not None and first.dtype == torch.bfloat16
    assert bank.search_keys() is first  # unchanged bank: same copy
    bank.objects.copy_(planted)  # an in-place write outside update()
    assert torch.equal(bank.search_keys(), _fresh_search_keys(
        bank, torch.bfloat16))
    state = {k: v.clone() for k, v in bank.state_dict().items()}
    state['objects'].mul_(-1)
    bank.load_state_dict(state)
    assert torch.equal(bank.search_keys(), _fresh_search_keys(
        bank, torch.bfloat16))
    ref = retrieve_cycle_consistent(v1, v2, bank.objects, bank.num_valid,
                                    True, chunk_size=256, search_dtype=None)
    for a, b in zip(bank.retrieve(v1, v2), ref):
        assert torch.equal(a, b)
    bank.search_dtype = 'float16'  # another format: another copy
    assert bank.search_keys().dtype == torch.float16
    assert 'search_keys' not in bank.state_dict()
    with pytest.raises(ValueError, match='copy of the bank'):
        retrieve_cycle_consistent(v1, v2, bank.objects, bank.num_valid, True,
                                  search_dtype='bfloat16',
                                  search_keys=bank.search_keys())
