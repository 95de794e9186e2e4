# Copyright (c) cribo-mm contributors. All rights reserved.
import time

from cribo_mm.utils import profiling
from cribo_mm.utils.profiling import StepProfiler, profile_part


def test_profile_part_is_a_shared_no_op_without_profiler():
    assert profile_part('a') is profile_part('b')
    with profile_part('a'):
        pass


def test_step_profiler_accumulates_parts_and_restores():
    with StepProfiler('cpu') as outer:
        with profile_part('sleep'):
            time.sleep(0.02)
        with StepProfiler() as inner:
            with profile_part('sleep'):
                time.sleep(0.01)
            with profile_part('sleep'):
                time.sleep(0.01)
        assert profiling._active is outer
        with profile_part('other'):
            pass
    assert profiling._active is None
    assert inner.calls == {'sleep': 2}
    assert 0.02 <= inner.times['sleep'] < 0.5
    assert outer.calls == {'sleep': 1, 'other': 1}
    assert 0.02 <= outer.times['sleep'] < 0.5
    # sleeping takes wall-clock time, not CPU time
    assert set(outer.cpu_times) == {'sleep', 'other'}
    assert 0 <= outer.cpu_times['sleep'] < outer.times['sleep']
    outer.reset()
    assert not outer.times and not outer.cpu_times and not outer.calls
