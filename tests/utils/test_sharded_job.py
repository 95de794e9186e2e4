# Copyright (c) cribo-mm contributors. All rights reserved.
"""ShardedJob: chunk ownership, resumption, settings guard, merging."""
import json

import numpy as np
import pytest

from cribo_mm.utils.sharded_job import ShardedJob, ShardedJobError, parse_shard


def test_chunk_ranges_and_owners(tmp_path):
    jobs = [
        ShardedJob(str(tmp_path / 'job'), 10, 3, {}, shard=(i, 2))
        for i in range(2)
    ]
    assert jobs[0].num_chunks == 4
    assert [list(jobs[0].chunk_range(c)) for c in range(4)] == [[0, 1, 2],
                                                                [3, 4, 5],
                                                                [6, 7, 8],
                                                                [9]]
    assert jobs[0].my_chunks() == [0, 2] and jobs[1].my_chunks() == [1, 3]
    # without a process group: one shard owns everything
    assert ShardedJob(str(tmp_path / 'job'), 10, 3, {}).my_chunks() == [
        0, 1, 2, 3
    ]


def test_resume_skips_done_chunks_and_merges_in_order(tmp_path):
    folder = str(tmp_path / 'job')
    a = ShardedJob(folder, 5, 2, dict(k=1), shard=(0, 2))
    b = ShardedJob(folder, 5, 2, dict(k=1), shard=(1, 2))
    for c in a.pending():
        a.save(c, [f'item{i}' for i in a.chunk_range(c)])
    assert a.pending() == [] and b.pending() == [1]
    with pytest.raises(ShardedJobError, match=r'1 of 3 chunks .* \[1\]'):
        list(a.merged())
    with pytest.raises(ShardedJobError, match='chunk 1 .* not done'):
        a.load(1)
    # a later run with another shard count finishes the job
    whole = ShardedJob(folder, 5, 2, dict(k=1))
    assert whole.pending() == [1]
    whole.save(1, ['item2', 'item3'])
    assert [x for p in whole.merged() for x in p] == [
        f'item{i}' for i in range(5)
    ]


def test_array_payloads_round_trip_and_mmap(tmp_path):
    job = ShardedJob(str(tmp_path / 'job'), 2, 1, {})
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    job.save(0, dict(x=arr, n=np.array([3])))
    job.save(1, dict(x=arr * 2, n=np.array([1])))
    out = job.load(0, ['x', 'n'], mmap=True)
    assert isinstance(out['x'], np.memmap)
    np.testing.assert_array_equal(out['x'], arr)
    merged = list(job.merged(['x']))
    np.testing.assert_array_equal(merged[1]['x'], arr * 2)
    # no temporary files are left behind
    assert not list((tmp_path / 'job').glob('*.tmp*'))


def test_other_settings_are_refused_naming_the_key(tmp_path):
    folder = str(tmp_path / 'job')
    ShardedJob(folder, 4, 2, dict(crop=224, ckpt='a.pth'))
    ShardedJob(folder, 4, 2, dict(crop=224, ckpt='a.pth'))  # same: fine
    with pytest.raises(ShardedJobError, match="crop=224.*crop=256"):
        ShardedJob(folder, 4, 2, dict(crop=256, ckpt='a.pth'))
    with pytest.raises(ShardedJobError, match='chunk_size=2'):
        ShardedJob(folder, 4, 3, dict(crop=224, ckpt='a.pth'))
    saved = json.loads((tmp_path / 'job' / 'settings.json').read_text())
    assert saved == dict(crop=224, ckpt='a.pth', num_items=4, chunk_size=2)


@pytest.mark.parametrize('text,expected', [(None, None), ('0/1', (0, 1)),
                                           ('3/4', (3, 4))])
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize('text', ['4/4', '-1/2', '1', 'a/b', '1/2/3'])
def test_parse_shard_rejects(text):
    with pytest.raises(ValueError, match='shard'):
        parse_shard(text)


def test_empty_job_is_refused(tmp_path):
    with pytest.raises(ValueError, match='num_items=0'):
        ShardedJob(str(tmp_path), 0, 2, {})
