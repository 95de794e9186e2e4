# Copyright (c) cribo-mm contributors. All rights reserved.
"""tools/analysis/summarize_dense_nn.py: the `make demo` table."""
import json
import math
import os
import time
from pathlib import Path

import pytest

from tests.engine.tiny_config import import_tool

TOOL = Path(__file__).resolve().parents[2] / 'tools' / 'analysis' / \
    'summarize_dense_nn.py'


def _tool():
    return import_tool(TOOL, 'summarize_dense_nn')


def _result(folder, miou, seeds=(0, ), std=0., name='dense_nn_1.json'):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(
        json.dumps(
            dict(
                num_val_images=128,
                summary={
                    '1': dict(mIoU=miou, mIoU_std=std, seeds=list(seeds))
                })))
    return path


def test_rows_baseline_and_seed_spread(tmp_path, capsys):
    tool = _tool()
    _result(tmp_path / 'random', 14.0)
    for seed, miou in enumerate((20., 22., 24.)):
        _result(tmp_path / f'cribo{seed}', miou)
    # a folder gives its newest result
    old = _result(tmp_path / 'dino', 1.0, name='dense_nn_0.json')
    os.utime(old, (time.time() - 100, time.time() - 100))
    _result(tmp_path / 'dino', 17.5, seeds=(0, 1), std=0.5)
    cribo = ','.join(str(tmp_path / f'cribo{s}') for s in range(3))
    rows = tool.main([
        f'random={tmp_path / "random"}', f'dino={tmp_path / "dino"}',
        f'cribo={cribo}', '--baseline', 'random', '--describe',
        'random=no training', 'cribo=CrIBo teacher'
    ])
    by_name = {r['name']: r for r in rows}
    assert by_name['cribo']['mIoU'] == pytest.approx(22.)
    assert by_name['cribo']['std'] == pytest.approx(2.)  # sample std
    assert by_name['cribo']['runs'] == 3
    assert by_name['dino']['mIoU'] == 17.5 and by_name['dino']['runs'] == 2
    assert by_name['dino']['std'] == 0.5
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert 'vs random' in lines[0] and 'what the row is' in lines[0]
    cribo_line = next(line for line in lines if line.startswith('cribo'))
    assert '22.00' in cribo_line and '+8.00' in cribo_line
    assert cribo_line.endswith('CrIBo teacher')
    assert 'How to read it' in out and 'floor' in out
    from cribo_mm.evaluation.dense_nn import mean_std
    assert mean_std([1.]) == (1., 0.)
    assert mean_std([1., 3.]) == (2., math.sqrt(2.))
    # a class absent from a run (NaN / None) is left out; nothing: NaN
    assert mean_std([1., float('nan'), None, 3.]) == (2., math.sqrt(2.))
    assert all(math.isnan(v) for v in mean_std([None]))


def test_errors_name_the_fault(tmp_path):
    tool = _tool()
    _result(tmp_path / 'a', 10.)
    with pytest.raises(SystemExit):
        tool.main([f'a={tmp_path / "missing"}'])
    with pytest.raises(SystemExit):
        tool.main([f'a={tmp_path / "a"}', '--baseline', 'nope'])
    with pytest.raises(SystemExit):
        tool.main([f'a={tmp_path / "a"}', '--describe', 'b=other row'])
    with pytest.raises(SystemExit):
        tool.main(['no-path'])
    with pytest.raises(FileNotFoundError, match='no dense_nn'):
        tool.latest_json(str(tmp_path))


def test_a_file_that_is_not_a_result_is_named(tmp_path, capsys):
    tool = _tool()
    broken = tmp_path / 'broken' / 'dense_nn_1.json'
    broken.parent.mkdir()
    broken.write_text('{')
    other = tmp_path / 'other' / 'dense_nn_1.json'
    other.parent.mkdir()
    other.write_text('{"x": 1}')
    with pytest.raises(SystemExit):
        tool.main([f'a={broken.parent}'])
    assert f'{broken}: not valid JSON' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.main([f'a={other.parent}'])
    assert f'{other} is not a dense_nn_retrieval.py result' in \
        capsys.readouterr().err
