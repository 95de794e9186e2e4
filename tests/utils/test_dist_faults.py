# Copyright (c) cribo-mm contributors. All rights reserved.
"""The collective timeout setting and the parent-death request."""
import datetime
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from cribo_mm.utils.dist_faults import (DEFAULT_DIST_TIMEOUT, TIMEOUT_ENV,
                                        dist_timeout)
from tests.engine.tiny_config import ROOT


def test_timeout_precedence(monkeypatch):
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    assert dist_timeout() == datetime.timedelta(seconds=DEFAULT_DIST_TIMEOUT)
    monkeypatch.setenv(TIMEOUT_ENV, '20')
    assert dist_timeout() == datetime.timedelta(seconds=20)
    # the config key (mmengine passes a timedelta) wins over the variable
    assert dist_timeout(datetime.timedelta(seconds=7)).total_seconds() == 7
    assert dist_timeout(90) == datetime.timedelta(seconds=90)
    for bad in ('0', '-3', 'ten', 'inf'):
        monkeypatch.setenv(TIMEOUT_ENV, bad)
        with pytest.raises(ValueError, match=TIMEOUT_ENV):
            dist_timeout()
    with pytest.raises(ValueError, match='env_cfg.dist_cfg.timeout'):
        dist_timeout(0)


def test_init_dist_gets_the_timeout(monkeypatch):
    """Every mmengine launcher initialisation receives the timeout."""
    import mmengine.dist.utils as dist_utils

    import cribo_mm.utils.compat as compat
    seen = {}
    monkeypatch.setattr(compat.torch_dist, 'init_process_group',
                        lambda **kw: seen.update(kw))
    monkeypatch.setattr(compat.torch.cuda, 'is_available', lambda: False)
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
    monkeypatch.setenv(TIMEOUT_ENV, '42')
    dist_utils._init_dist_pytorch('nccl')
    assert seen['backend'] == 'gloo'
    assert seen['timeout'] == datetime.timedelta(seconds=42)
    dist_utils._init_dist_pytorch('nccl',
                                  timeout=datetime.timedelta(seconds=5))
    assert seen['timeout'] == datetime.timedelta(seconds=5)


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='prctl')
def test_rank_follows_a_launcher_that_died_before_it_asked():
    """The start-up race: the launcher is gone before prctl is called."""
    code = textwrap.dedent(f'''
        import importlib.util
        spec = importlib.util.spec_from_file_location(
            'dist_faults', {str(ROOT / 'cribo_mm/utils/dist_faults.py')!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert module.die_with_parent()
        print('survived', flush=True)
    ''')
    env = dict(os.environ, CRIBO_LAUNCHER_PID='1')
    proc = subprocess.run([sys.executable, '-c', code], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert 'survived' not in proc.stdout
    env['CRIBO_LAUNCHER_PID'] = str(os.getpid())
    proc = subprocess.run([sys.executable, '-c', code], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and 'survived' in proc.stdout, proc.stderr
