# Copyright (c) cribo-mm contributors. All rights reserved.
"""The object and neighbour tools on the demo scenes with a tiny random
checkpoint: pictures exist, have the expected size, are not blank and are
reproducible from the seed."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest

from cribo_mm.visualization import load_png
from cribo_mm.visualization.figures import wrap_text
from tests.engine.tiny_config import DEMO_CONFIG, ROOT, TINY_OPTIONS

from .conftest import assert_not_blank, load_tool

TINY = ['--cfg-options', *TINY_OPTIONS]
# demo images of the tiny config are 96x128 (H x W)
IMG_H, IMG_W = 96, 128


def _objects(ckpt, out_dir, *extra):
    tool = load_tool('visualize_objects')
    return tool.main([
        str(DEMO_CONFIG), ckpt, '--out-dir', str(out_dir), '--device', 'cpu',
        '--no-progress', *extra, *TINY
    ])


def _object_figure_width(panel):
    original_w = round(IMG_W * panel / IMG_H)
    return 6 + original_w + 8 + (panel + 4) + 8 + (panel + 4) + 6


def test_visualize_objects(tiny_checkpoint, tmp_path):
    panel = 112
    files = _objects(tiny_checkpoint, tmp_path / 'a', '--num-images', '2',
                     '--panel-size', str(panel), '--seed', '3', '--grid',
                     str(tmp_path / 'a' / 'grid.png'))
    assert len(files) == 3 and all(osp.isfile(f) for f in files)
    assert osp.basename(files[0]) == '00000_00000_objects.png'
    width = _object_figure_width(panel)
    body = 6 + 6 + panel + 4 + 20  # margins, framed view, caption
    for f in files[:2]:
        image = load_png(f)
        assert image.shape[1] == width
        # header: the title and the object count, possibly wrapped
        heights = {body + 26 + 18 * k for k in range(1, 6)}
        assert image.shape[0] in heights, image.shape
        assert_not_blank(image)
    grid = load_png(files[2])
    assert grid.shape[1] == width
    assert grid.shape[0] == sum(load_png(f).shape[0] for f in files[:2]) + 4

    # same seed, same pictures; another seed, other views
    again = _objects(tiny_checkpoint, tmp_path / 'b', '--indices', '1',
                     '--panel-size', str(panel), '--seed', '3')
    np.testing.assert_array_equal(load_png(again[0]), load_png(files[1]))
    other = _objects(tiny_checkpoint, tmp_path / 'c', '--indices', '1',
                     '--panel-size', str(panel), '--seed', '4')
    assert not np.array_equal(load_png(other[0]), load_png(files[1]))


def test_visualize_objects_options_and_errors(tiny_checkpoint, tmp_path,
                                              monkeypatch):
    images = tmp_path / 'imgs'
    images.mkdir()
    import cv2
    rng = np.random.default_rng(0)
    for i in range(2):
        cv2.imwrite(str(images / f'p{i}.png'),
                    rng.integers(0, 256, (80, 100, 3), dtype=np.uint8))
    files = _objects(tiny_checkpoint, tmp_path / 'o', '--images',
                     str(images), '--plain-views', '--invalid-style', 'grey',
                     '--no-ids', '--colors', '64', '--panel-size', '96')
    assert [osp.basename(f) for f in files] == [
        '00000_p0_objects.png', '00001_p1_objects.png'
    ]
    image = load_png(files[0])
    assert np.unique(image.reshape(-1, 3), axis=0).shape[0] <= 64
    assert_not_blank(image)

    # --show without a display: a warning, the files are written anyway
    monkeypatch.delenv('DISPLAY', raising=False)
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
    with pytest.warns(UserWarning, match='no display'):
        shown = _objects(tiny_checkpoint, tmp_path / 's', '--num-images',
                         '1', '--panel-size', '64', '--show')
    assert osp.isfile(shown[0])

    with pytest.raises(FileNotFoundError, match='checkpoint'):
        _objects(str(tmp_path / 'missing.pth'), tmp_path / 'x')
    with pytest.raises(FileNotFoundError, match='image path'):
        _objects(tiny_checkpoint, tmp_path / 'x', '--images',
                 str(tmp_path / 'nothing'))
    with pytest.raises(IndexError, match='outside'):
        _objects(tiny_checkpoint, tmp_path / 'x', '--indices', '999')
    # the checkpoint does not fit the full-size demo model
    with pytest.raises(ValueError, match='does not fit'):
        load_tool('visualize_objects').main(
            [str(DEMO_CONFIG), tiny_checkpoint, '--out-dir',
             str(tmp_path / 'x'), '--no-progress'])


def _neighbours(ckpt, out, *extra):
    tool = load_tool('visualize_neighbours')
    return tool.main([
        str(DEMO_CONFIG), ckpt, '--out', str(out), '--device', 'cpu',
        '--no-progress', *extra, *TINY
    ])


def test_visualize_neighbours(tiny_checkpoint, tmp_path):
    panel = 96
    args = ('--num-query-images', '3', '--bank-size', '6', '--num-pairs',
            '3', '--cols', '2', '--panel-size', str(panel), '--seed', '1')
    res = _neighbours(tiny_checkpoint, tmp_path / 'nn.png', *args)
    image = load_png(res['png'])
    cell = 3 + 2 * round(IMG_W * panel / IMG_H) + 6 + 3
    assert image.shape[1] == 6 + 2 * cell + 8 + 6
    cell_h = 3 + panel + 20 + 20 + 3
    heights = {6 + 6 + 26 + 18 * k + 2 * cell_h + 8 for k in range(1, 6)}
    assert image.shape[0] in heights, image.shape
    assert_not_blank(image)
    with open(res['json']) as f:
        report = json.load(f)
    assert len(report['pairs']) == len(res['pairs']) > 0
    for pair in report['pairs']:
        assert 0 <= pair['bank_slot'] < report['bank_objects']
        assert -1.0001 <= pair['cosine'] <= 1.0001
        assert isinstance(pair['cycle_consistent'], bool)
        assert pair['neighbour_index'] >= 3  # bank images follow queries
    share = np.mean([p['cycle_consistent'] for p in report['pairs']])
    assert report['cycle_consistent_share'] == pytest.approx(share)

    again = _neighbours(tiny_checkpoint, tmp_path / 'nn2.png', *args)
    np.testing.assert_array_equal(load_png(again['png']), image)


def test_visualize_neighbours_checkpoint_bank(tiny_checkpoint, tmp_path):
    res = _neighbours(tiny_checkpoint, tmp_path / 'ck.png',
                      '--num-query-images', '2', '--checkpoint-bank',
                      '--select', 'all', '--panel-size', '64')
    assert_not_blank(load_png(res['png']))
    assert res['json'] == str(tmp_path / 'ck.json')
    # a fresh bank holds only its initial noise
    assert all(p['neighbour_is_noise'] for p in res['pairs'])
    res = _neighbours(tiny_checkpoint, tmp_path / 'nojson.png',
                      '--num-query-images', '1', '--checkpoint-bank',
                      '--json', 'none', '--panel-size', '48')
    assert res['json'] is None and not (tmp_path / 'nojson.json').exists()
    with pytest.raises(IndexError):
        _neighbours(tiny_checkpoint, tmp_path / 'x.png', '--start', '99')
    with pytest.raises(ValueError, match='no image left'):
        _neighbours(tiny_checkpoint, tmp_path / 'x.png',
                    '--num-query-images', '16')


def test_choose_pairs():
    tool = load_tool('visualize_neighbours')
    pairs = [
        dict(item=i // 3, size=10 - i % 3, cycle_consistent=i % 2 == 0)
        for i in range(9)
    ]
    largest = tool.choose_pairs(pairs, 'largest', 3)
    assert [p['item'] for p in largest] == [0, 1, 2]  # one per image first
    balanced = tool.choose_pairs(pairs, 'balanced', 4)
    assert [p['cycle_consistent'] for p in balanced] == [True, False] * 2
    assert len(tool.choose_pairs(pairs, 'all', 1)) == 9


def test_wrap_matches_header_lines():
    assert wrap_text('short', 500, 10) == ['short']


@pytest.mark.slow
def test_command_lines(tiny_checkpoint, tmp_path):
    """The scripts run as commands; bad paths give a one-line error."""
    env_cmd = [sys.executable]
    out = subprocess.run(
        env_cmd + [
            str(ROOT / 'tools' / 'analysis' / 'visualize_objects.py'),
            str(DEMO_CONFIG), tiny_checkpoint, '--num-images', '1',
            '--out-dir', str(tmp_path), *TINY
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'wrote' in out.stdout
    bad = subprocess.run(
        env_cmd + [
            str(ROOT / 'tools' / 'analysis' / 'plot_training_curves.py'),
            str(tmp_path / 'no_such_dir')
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1
    assert bad.stderr.startswith('error:') and 'does not exist' in bad.stderr
