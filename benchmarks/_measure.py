# Copyright (c) cribo-mm contributors. All rights reserved.
"""Time and peak-memory measurement shared by the benchmarks."""
import gc
import time

import torch


def _status_kib(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_cpu_peak():
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def measure(fn, device, repeats, cpu_time=False):
    """Run ``fn`` ``repeats`` times; return (result, best seconds, peak MiB).

    The peak is the largest increase of memory over what was in use right
    before a call (NaN when it cannot be measured). With ``cpu_time`` a
    fourth value is returned: the smallest CPU time of the process (all its
    threads) during a call, which other processes on a loaded machine
    disturb less than the wall-clock time.
    """
    result, best, peak, best_cpu = None, float('inf'), 0.0, float('inf')
    for _ in range(repeats):
        result = None
        gc.collect()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
        else:
            can = _reset_cpu_peak()
            before = _status_kib('VmRSS') if can else None
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
        if device.type == 'cuda':
            used = (torch.cuda.max_memory_allocated(device) - before) / 2**20
        elif before is not None:
            used = (_status_kib('VmHWM') - before) / 1024
        else:
            used = float('nan')
        peak = max(peak, used)
    if cpu_time:
        return result, best, peak, best_cpu
    return result, best, peak
