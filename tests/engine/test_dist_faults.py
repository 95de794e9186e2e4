# Copyright (c) cribo-mm contributors. All rights reserved.
"""Distributed faults on CPU (gloo, two processes through
tools/dist_train.sh): a stopped rank ends the job within the collective
timeout; a killed launcher takes its ranks down."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from mmengine.config import Config

from tests.engine.tiny_config import DEMO_CONFIG, ROOT, TINY_OPTIONS

pytestmark = pytest.mark.slow

# A test-only hook: every rank writes its pid when the run starts; the
# chosen rank stops itself (SIGSTOP, as a hung or frozen process would) at
# the chosen iteration.
HOOK_MODULE = '''
import os
import signal
import time

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class FaultTestHook(Hook):

    def __init__(self, stop_rank=-1, stop_iter=1):
        self.stop_rank, self.stop_iter = stop_rank, stop_iter
        self.folder = os.environ['FAULT_TEST_DIR']

    def before_run(self, runner):
        with open(os.path.join(self.folder, f'rank{runner.rank}.pid'),
                  'w') as f:
            f.write(str(os.getpid()))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.rank == 0:
            with open(os.path.join(self.folder, 'iter'), 'w') as f:
                f.write(str(runner.iter))
        if runner.rank == self.stop_rank and runner.iter == self.stop_iter:
            with open(os.path.join(self.folder, 'stopped'), 'w') as f:
                f.write(str(time.time()))
            os.kill(os.getpid(), signal.SIGSTOP)
'''


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _alive(pid):
    """Whether ``pid`` is a running (not zombie) process."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            state = f.read().rsplit(')', 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ('Z', 'X')


def _wait(predicate, timeout, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def _launch(tmp_path, hook, max_epochs, extra_env=None):
    """Start tools/dist_train.sh with 2 CPU ranks and the test hook."""
    (tmp_path / 'fault_test_hooks.py').write_text(HOOK_MODULE)
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.custom_imports = dict(
        imports=['cribo_mm', 'fault_test_hooks'], allow_failed_imports=False)
    cfg.custom_hooks.append(dict(type='FaultTestHook', **hook))
    config = tmp_path / 'fault_config.py'
    cfg.dump(str(config))
    env = dict(
        os.environ,
        PYTHONPATH=f'{ROOT}{os.pathsep}{tmp_path}',
        OMP_NUM_THREADS='1',
        PYTHON=sys.executable,
        PORT=str(_free_port()),
        FAULT_TEST_DIR=str(tmp_path))
    env.update(extra_env or {})
    log = open(tmp_path / 'launcher.log', 'w')
    proc = subprocess.Popen(
        ['bash', str(ROOT / 'tools' / 'dist_train.sh'), str(config), '2',
         '--work-dir', str(tmp_path / 'work'), '--cfg-options',
         *TINY_OPTIONS, f'train_cfg.max_epochs={max_epochs}',
         'default_hooks.checkpoint.interval=1000'],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    return proc, log


def _rank_pids(tmp_path):
    pids = []
    for rank in (0, 1):
        path = tmp_path / f'rank{rank}.pid'
        if path.exists() and path.read_text().strip():
            pids.append(int(path.read_text()))
    return pids


def _cleanup(proc, tmp_path):
    """Kill whatever the test left (only processes this test started)."""
    for pid in _rank_pids(tmp_path):
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _output(tmp_path):
    return (tmp_path / 'launcher.log').read_text()[-6000:]


def test_stopped_rank_ends_the_job_within_the_timeout(tmp_path):
    timeout = 15
    proc, log = _launch(
        tmp_path, dict(stop_rank=1, stop_iter=1), max_epochs=50,
        extra_env=dict(CRIBO_DIST_TIMEOUT=str(timeout),
                       TORCH_ELASTIC_SHUTDOWN_TIMEOUT='2'))
    try:
        assert _wait(lambda: (tmp_path / 'stopped').exists()
                     or proc.poll() is not None, 120), _output(tmp_path)
        assert (tmp_path / 'stopped').exists(), _output(tmp_path)
        stopped_at = time.monotonic()
        rc = proc.wait(timeout=timeout + 40)
        elapsed = time.monotonic() - stopped_at
        out = _output(tmp_path)
        assert rc != 0, out
        # the timeout, then torchrun's shutdown of the stopped rank (2 s
        # grace; torchrun itself would wait 30 s)
        assert elapsed < timeout + 15, (elapsed, out)
        assert elapsed > timeout - 5, (elapsed, out)
        assert 'timed out' in out.lower() or 'timeout' in out.lower(), out
        assert not [p for p in _rank_pids(tmp_path) if _alive(p)]
    finally:
        _cleanup(proc, tmp_path)
        log.close()


@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_launcher_takes_the_ranks_down(tmp_path, sig):
    proc, log = _launch(tmp_path, dict(), max_epochs=1000)
    try:
        # both ranks are training
        assert _wait(lambda: len(_rank_pids(tmp_path)) == 2 and
                     (tmp_path / 'iter').exists() or proc.poll() is not None,
                     120), _output(tmp_path)
        assert proc.poll() is None, _output(tmp_path)
        ranks = _rank_pids(tmp_path)
        assert all(_alive(p) for p in ranks)
        # the script exec'ed torchrun: the process we started is torchrun
        with open(f'/proc/{proc.pid}/cmdline') as f:
            assert 'dist_launch.py' in f.read()
        os.kill(proc.pid, sig)
        assert _wait(lambda: not any(_alive(p) for p in ranks), 15), (
            [p for p in ranks if _alive(p)], _output(tmp_path))
        assert proc.wait(timeout=15) != 0
    finally:
        _cleanup(proc, tmp_path)
        log.close()

