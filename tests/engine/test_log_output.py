# Copyright (c) cribo-mm contributors. All rights reserved.
"""Quieter, pipe-friendly logs: the ETA after warm-up, line-based progress
when the output is not a terminal."""
import io
import types

import pytest
from mmengine.hooks import IterTimerHook
from mmengine.logging import MessageHub

from cribo_mm.engine.hooks import CrIBoIterTimerHook


class _Clock:

    def __init__(self):
        self.now = 1000.

    def __call__(self):
        return self.now


def _run(hook, durations, monkeypatch, max_iters, start_iter=0):
    """Drive the timer hook's training calls; ETA after every iteration."""
    clock = _Clock()
    monkeypatch.setattr('time.time', clock)
    hub = MessageHub.get_instance(f'timer_test_{id(hook)}')
    runner = types.SimpleNamespace(
        iter=start_iter, max_iters=max_iters, message_hub=hub)
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    etas = []
    for i, seconds in enumerate(durations):
        runner.iter = start_iter + i
        hook.before_train_iter(runner, i)
        clock.now += seconds
        hook.after_train_iter(runner, i)
        etas.append(hub.runtime_info.get('eta'))
        assert hub.get_scalar('train/time').current() == pytest.approx(
            seconds)
    return etas


def test_eta_leaves_out_the_start_up_iteration(monkeypatch):
    # a slow first iteration (worker start-up), then 2 s per iteration
    durations = [60.] + [2.] * 5
    ours = _run(CrIBoIterTimerHook(), durations, monkeypatch, max_iters=100)
    upstream = _run(IterTimerHook(), durations, monkeypatch, max_iters=100)
    assert ours[0] is None  # no ETA before the warm-up is over
    for i in range(1, len(durations)):
        remaining = 100 - i - 1
        assert ours[i] == pytest.approx(2. * remaining)
        # mmengine's average still holds the 60 s start-up
        assert upstream[i] == pytest.approx(
            sum(durations[:i + 1]) / (i + 1) * remaining)
        assert upstream[i] > 3 * ours[i]


def test_eta_after_resume_and_longer_warmup(monkeypatch):
    durations = [30., 30., 1., 3.]
    etas = _run(CrIBoIterTimerHook(warmup_iters=2), durations, monkeypatch,
                max_iters=50, start_iter=20)
    assert etas[:2] == [None, None]
    assert etas[2] == pytest.approx(1. * (50 - 22 - 1))
    assert etas[3] == pytest.approx(2. * (50 - 23 - 1))
    with pytest.raises(ValueError, match='warmup_iters'):
        CrIBoIterTimerHook(warmup_iters=-1)


def test_default_runtime_uses_the_timer():
    from mmengine.config import Config

    from tests.engine.tiny_config import ROOT
    cfg = Config.fromfile(ROOT / 'configs' / '_base_' / 'default_runtime.py')
    assert cfg.default_hooks.timer.type == 'CrIBoIterTimerHook'


class _Terminal(io.StringIO):

    def isatty(self):
        return True


def test_progress_is_line_based_when_not_a_terminal():
    from cribo_mm.utils.progress import (BarProgress, LineProgress,
                                         make_progress)
    stream = io.StringIO()
    bar = make_progress(40, title='Memory', stream=stream)
    assert isinstance(bar, LineProgress)
    for _ in range(40):
        bar.update()
    bar.close()
    bar.close()  # once
    text = stream.getvalue()
    assert '\r' not in text
    lines = text.splitlines()
    # one line per tenth (10 % .. 90 %), then the final one
    assert len(lines) == 10
    assert lines[0].startswith('Memory: 4/40 (10%)') and 'ETA' in lines[0]
    assert lines[-1].startswith('Memory: 40/40 (100%)')
    # chunked updates cross several tenths at once: still one line each call
    stream = io.StringIO()
    bar = make_progress(10, title='kNN', stream=stream)
    bar.update(5)
    bar.update(5)
    bar.close()
    assert [line.split(',')[0] for line in stream.getvalue().splitlines()
            ] == ['kNN: 5/10 (50%)', 'kNN: 10/10 (100%)']
    # on a terminal: mmengine's bar; disabled: silent
    terminal = _Terminal()
    bar = make_progress(3, title='t', stream=terminal)
    assert isinstance(bar, BarProgress)
    bar.update()
    bar.close()
    assert '\r' in terminal.getvalue() or '[' in terminal.getvalue()
    quiet = io.StringIO()
    make_progress(3, enabled=False, stream=quiet).update()
    assert quiet.getvalue() == ''


def test_dense_nn_progress_follows_stdout(capsys):
    from cribo_mm.evaluation.dense_nn.progress import make_progress
    bar = make_progress(4, title='k-NN retrieval')  # stdout is captured
    for _ in range(4):
        bar.update()
    bar.close()
    out = capsys.readouterr().out
    assert '\r' not in out and 'k-NN retrieval: 4/4 (100%)' in out


def test_expected_upstream_warnings_are_filtered_narrowly():
    import logging
    import warnings

    from mmengine.logging import MMLogger

    from cribo_mm.utils.log_filters import install_log_filters
    install_log_filters()
    install_log_filters()  # idempotent
    logger = MMLogger.get_instance('log_filter_test', log_level='INFO')
    records = []

    class _Keep(logging.Handler):

        def emit(self, record):
            records.append(record.getMessage())

    logger.addHandler(_Keep())
    expected = [
        'teacher.module.0.pos_embed is skipped since its requires_grad=False',
        '"FileClient" will be deprecated in future. Please use io functions '
        'in https://mmengine.readthedocs.io/en/latest/api/fileio.html'
        '#file-io',
        '"HardDiskBackend" is the alias of "LocalBackend" and the former '
        'will be deprecated in future.',
    ]
    kept = [
        'backbone.layers.0.ln1.weight is skipped since its '
        'requires_grad=False',  # frozen on purpose or not: the user decides
        '"FileClient" will be deprecated in future, and so on',
        'non-finite CrIBo loss at iteration 3',
    ]
    for message in expected + kept:
        logger.warning(message)
    logger.info(expected[0])  # only warnings are filtered
    assert records == kept + [expected[0]]
    # the filter also reaches loggers created before the install
    assert any(type(f).__name__ == 'ExpectedWarningsFilter'
               for f in MMLogger.get_current_instance().filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn("'pin_memory' argument is set as true but no "
                      "accelerator is found, then device pinned memory "
                      "won't be used.", UserWarning)
        warnings.warn("'pin_memory' argument is set as true but not "
                      'supported on MPS now', UserWarning)
    assert [str(w.message)[:40] for w in caught] == [
        "'pin_memory' argument is set as true but"
    ]
    assert 'MPS' in str(caught[0].message)


def test_orl_stage2_progress_lines_are_titled(capsys):
    from tests.engine.tiny_config import import_tool
    common = import_tool('tools/orl/_common.py', 'orl_common')
    job = types.SimpleNamespace(
        folder='/runs/stage2/proposals/', chunk_range=lambda c: range(4))
    bar = common.ShardProgress.for_chunks(job, [0, 1, 2])
    bar.update(6)
    bar.update(6)
    bar.close()
    assert bar.done == 12
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(',')[0] for line in lines] == [
        'proposals: 6/12 (50%)', 'proposals: 12/12 (100%)'
    ]
