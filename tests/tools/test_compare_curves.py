# Copyright (c) cribo-mm contributors. All rights reserved.
import json

import numpy as np
import pytest

from tests.engine.tiny_config import ROOT, import_tool


def _tool():
    return import_tool('tools/analysis/compare_training_curves.py',
                       'compare_training_curves')


def _write_run(folder, losses, offset=0.):
    path = folder / '20260101_000000' / 'vis_data'
    path.mkdir(parents=True)
    with open(path / 'scalars.json', 'w') as f:
        for step, value in enumerate(losses, 1):
            f.write(json.dumps(dict(
                step=step, loss=value + offset, loss_global=value,
                loss_object_crossview=1., loss_object_crossimage=0.)) + '\n')


def test_smoothed_difference():
    tool = _tool()
    x = np.arange(1, 11, dtype=float)
    ref = (x, np.full(10, 2.))
    other = (x[2:], np.full(8, 2.) + np.r_[np.zeros(7), 1.])
    d = tool.smoothed_difference(ref, other, 1)
    assert d['points'] == 8
    assert d['max_abs'] == pytest.approx(1.) and d['final_abs'] == 1.
    assert d['max_rel'] == pytest.approx(0.5)
    d = tool.smoothed_difference(ref, other, 4)  # the jump is averaged
    assert d['max_abs'] == pytest.approx(0.25)
    with pytest.raises(ValueError, match='share no'):
        tool.smoothed_difference(ref, (x + 100, ref[1]), 1)


def test_compare_two_runs(tmp_path):
    losses = list(np.linspace(8., 6., 30))
    _write_run(tmp_path / 'a', losses)
    _write_run(tmp_path / 'b', losses, offset=0.1)
    out = tmp_path / 'cmp.png'
    report = _tool().main([f'fp32={tmp_path / "a"}', f'bf16={tmp_path / "b"}',
                           '--smooth', '5', '--out', str(out),
                           '--size', '600', '400'])
    assert out.is_file()
    assert report['bf16']['loss']['max_abs'] == pytest.approx(0.1)
    assert report['bf16']['loss_global']['max_abs'] == pytest.approx(0.)
    saved = json.loads((tmp_path / 'cmp.json').read_text())
    assert saved['reference'] == 'fp32'
    assert saved['difference']['bf16']['loss']['points'] == 30
