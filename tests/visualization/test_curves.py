# Copyright (c) cribo-mm contributors. All rights reserved.
"""Training curves from scalar logs (:mod:`cribo_mm.visualization.curves`
and ``tools/analysis/plot_training_curves.py``)."""
import json
import math

import numpy as np
import pytest

from cribo_mm.visualization import (find_scalar_logs, load_png,
                                    load_training_records, moving_average,
                                    training_series)
from cribo_mm.visualization.curves import (epoch_starts, off_spans,
                                           training_figure)

from .conftest import assert_not_blank, load_tool


def _record(step, iters_per_epoch=8):
    epoch = (step - 1) // iters_per_epoch + 1
    return dict(
        loss=12. - 0.01 * step,
        loss_global=6. - 0.01 * step,
        loss_object_crossview=5.9,
        loss_object_crossimage=0. if epoch == 1 else 5.5,
        objects_per_image=7 + np.sin(step),
        cycle_consistent_ratio=0.1 + 0.002 * step,
        bank_fill=min(1., step / 16),
        crossimage_enabled=float(epoch > 1),
        # the teacher leaves the uniform plateau (log 64) after step 10
        teacher_entropy_global=math.log(64) - (0 if step <= 10 else 0.1 *
                                               (step - 10)),
        teacher_batch_entropy_global=math.log(64) - 0.01 * step,
        log_out_dim_global=math.log(64),
        teacher_entropy_object=math.log(32) - 0.05 * step,
        teacher_batch_entropy_object=math.log(32) - 0.001 * step,
        log_out_dim_object=math.log(32),
        epoch=epoch,
        iter=step,
        step=step)


def _write_run(folder, steps, extra_lines=()):
    folder.mkdir(parents=True)
    (folder / 'vis_data').mkdir()
    lines = [json.dumps(_record(s)) for s in steps]
    lines += list(extra_lines)
    (folder / 'vis_data' / 'scalars.json').write_text('\n'.join(lines) + '\n')


@pytest.fixture
def work_dir(tmp_path):
    wd = tmp_path / 'run'
    # first run: 1..24, cut line at the end (crash)
    _write_run(wd / '20260101_000000', range(2, 25, 2), ['{"loss": 1'])
    # resumed run: 17..40 and one validation record
    _write_run(wd / '20260102_000000', range(18, 41, 2),
               [json.dumps(dict(accuracy=0.5, step=40))])
    # an aborted run without records
    (wd / '20260103_000000' / 'vis_data').mkdir(parents=True)
    (wd / '20260103_000000' / 'vis_data' / 'scalars.json').write_text('')
    return wd


def test_find_and_load(work_dir):
    files = find_scalar_logs(str(work_dir))
    assert len(files) == 3 and files[0] < files[1] < files[2]
    latest = load_training_records(str(work_dir))
    assert [r['step'] for r in latest] == list(range(18, 41, 2))
    merged = load_training_records(str(work_dir), all_runs=True)
    assert [r['step'] for r in merged] == list(range(2, 41, 2))
    single = load_training_records(files[0])
    assert len(single) == 12
    with pytest.raises(FileNotFoundError, match='does not exist'):
        find_scalar_logs(str(work_dir / 'missing'))
    (work_dir / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='no scalar log'):
        find_scalar_logs(str(work_dir / 'empty'))


def test_series_helpers(work_dir):
    records = load_training_records(str(work_dir), all_runs=True)
    series = training_series(records)
    assert {'loss_global', 'cycle_consistent_ratio',
            'objects_per_image'} <= set(series)
    xs, ys = series['loss_object_crossimage']
    assert xs.shape == ys.shape == (20, )
    assert epoch_starts(series) == [(8., 2), (16., 3), (24., 4), (32., 5)]
    by_epoch = training_series(records, x_key='epoch')
    np.testing.assert_allclose(by_epoch['loss'][0][:5],
                               [0.25, 0.5, 0.75, 1., 1.25])
    xs, on = series['crossimage_enabled']
    assert off_spans(xs, on) == [(2., 8.)]
    assert off_spans(np.array([1., 2., 3.]), np.array([1, 0, 1])) == [(2.,
                                                                      3.)]
    np.testing.assert_allclose(
        moving_average(np.array([1., 2., 3., 4.]), 2), [1, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(moving_average(np.arange(3.), 1),
                               np.arange(3.))


def test_plot_tool(work_dir, tmp_path):
    tool = load_tool('plot_training_curves')
    out = tool.main([str(work_dir), '--out', str(tmp_path / 'a.png'),
                     '--all-runs', '--size', '900', '300'])
    image = load_png(out)
    assert image.shape == (300, 900, 3)
    assert_not_blank(image)
    again = load_png(tool.main([str(work_dir), '--out',
                                str(tmp_path / 'b.png'), '--all-runs',
                                '--size', '900', '300']))
    np.testing.assert_array_equal(image, again)
    # default output next to the logs, smoothing, epoch axis
    out = tool.main([str(work_dir), '--smooth', '3', '--x', 'epoch',
                     '--total'])
    assert out == str(work_dir / 'training_curves.png')
    assert load_png(out).shape == (720, 1200, 3)
    assert len(load_training_records(str(work_dir))) == 12


def test_plot_tool_errors(tmp_path):
    tool = load_tool('plot_training_curves')
    with pytest.raises(FileNotFoundError):
        tool.main([str(tmp_path / 'nope')])
    wd = tmp_path / 'val_only'
    (wd / 'x' / 'vis_data').mkdir(parents=True)
    (wd / 'x' / 'vis_data' / 'scalars.json').write_text(
        json.dumps(dict(accuracy=1., step=1)) + '\n')
    with pytest.raises(ValueError, match='no training record'):
        tool.main([str(wd)])


def _axis(fig, title):
    found = [ax for ax in fig.axes if ax.get_title() == title]
    assert len(found) == 1, [ax.get_title() for ax in fig.axes]
    return found[0]


def test_figure_has_the_teacher_entropy_panel(work_dir):
    series = training_series(
        load_training_records(str(work_dir), all_runs=True))
    fig = training_figure(series)
    assert [ax.get_title() for ax in fig.axes] == [
        'loss terms', 'teacher entropy', 'cycle-consistent pairs',
        'objects per image'
    ]
    ax = _axis(fig, 'teacher entropy')
    lines = {line.get_label(): line for line in ax.get_lines()}
    # the four entropy curves carry the logged values
    for key, label in (('teacher_entropy_global', 'global: mean H(teacher)'),
                       ('teacher_batch_entropy_global',
                        'global: H(batch mean)'),
                       ('teacher_entropy_object', 'object: mean H(teacher)'),
                       ('teacher_batch_entropy_object',
                        'object: H(batch mean)')):
        np.testing.assert_allclose(lines[label].get_ydata(), series[key][1])
        np.testing.assert_allclose(lines[label].get_xdata(), series[key][0])
    assert lines['global: mean H(teacher)'].get_linestyle() == '-'
    assert lines['global: H(batch mean)'].get_linestyle() == '--'
    # one horizontal log(out_dim) line per head size
    levels = sorted(
        float(line.get_ydata()[0]) for line in ax.get_lines()
        if line.get_linestyle() == ':' and len(set(line.get_ydata())) == 1
        and line.get_xdata()[0] == 0)
    np.testing.assert_allclose(levels, [math.log(32), math.log(64)],
                               rtol=1e-6)
    # without the diagnostics (an old log) the panel says so
    old = {k: v for k, v in series.items() if 'entropy' not in k
           and not k.startswith('log_out_dim')}
    ax = _axis(training_figure(old), 'teacher entropy')
    assert [t.get_text() for t in ax.texts] == ['not logged']
    assert not ax.get_lines() or all(
        line.get_linestyle() == ':' for line in ax.get_lines())
