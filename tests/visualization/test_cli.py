# Copyright (c) cribo-mm contributors. All rights reserved.
"""Image selection and config loading shared by the drawing tools."""
import argparse

import numpy as np
import pytest

from cribo_mm.visualization import (add_image_selection_args, add_show_args,
                                    load_config, load_png, sample_png_name,
                                    save_figures, select_indices)


def test_select_indices_range_explicit_and_errors():
    assert select_indices(10, None, 3, 4) == [3, 4, 5, 6]
    assert select_indices(10, None, 8, 4) == [8, 9]  # clipped at the end
    assert select_indices(10, None, 2, 0) == [2]  # at least one image
    assert select_indices(10, [9, 0, 9], 5, 1) == [9, 0, 9]
    with pytest.raises(IndexError, match='--start 10 is outside the 10'):
        select_indices(10, None, 10, 1)
    with pytest.raises(IndexError, match='--start -1'):
        select_indices(10, None, -1, 1)
    with pytest.raises(IndexError, match=r'indices \[10, -1\] are outside'):
        select_indices(10, [3, 10, -1], 0, 1)


def test_selection_and_show_arguments():
    parser = argparse.ArgumentParser()
    add_image_selection_args(parser)
    add_show_args(parser)
    args = parser.parse_args([])
    assert (args.start, args.num_images, args.indices) == (0, 4, None)
    assert (args.show, args.wait_time) == (False, 0.)
    args = parser.parse_args(
        ['--indices', '2', '5', '--show', '--wait-time', '1.5'])
    assert args.indices == [2, 5] and args.show and args.wait_time == 1.5


def test_load_config_merges_options_and_names_missing_file(tmp_path):
    path = tmp_path / 'cfg.py'
    path.write_text('model = dict(a=1, b=dict(c=2))\n')
    cfg = load_config(str(path), {'model.b.c': 3})
    assert cfg.model.a == 1 and cfg.model.b.c == 3
    assert load_config(str(path)).model.b.c == 2
    missing = str(tmp_path / 'nope.py')
    with pytest.raises(FileNotFoundError,
                       match=r"dataset config '.*nope.py' does not exist"):
        load_config(missing, what='dataset config')
    with pytest.raises(FileNotFoundError, match='is not a file'):
        load_config(str(tmp_path))


def test_sample_png_name():
    assert sample_png_name('a/b/img_3.jpg', 7, 'views') == \
        '00007_img_3_views.png'
    assert sample_png_name('a/b/.jpg', 12, 'objects') == \
        '00012_.jpg_objects.png'  # a dot file's stem is its whole name
    assert sample_png_name('', 5, 'x') == '00005_5_x.png'


def test_save_figures_writes_each_then_the_grid(tmp_path, capsys):
    red = np.zeros((8, 10, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((6, 10, 3), np.uint8)
    blue[..., 2] = 255
    grid = str(tmp_path / 'grid.png')
    written = save_figures(
        iter([((red, []), 'r.png'), ((blue, []), 'b.png')]),
        str(tmp_path / 'out'), grid=grid)
    assert written == [
        str(tmp_path / 'out' / 'r.png'),
        str(tmp_path / 'out' / 'b.png'), grid
    ]
    np.testing.assert_array_equal(load_png(written[0]), red)
    np.testing.assert_array_equal(load_png(written[1]), blue)
    stacked = load_png(grid)
    assert stacked.shape[1] == 10 and stacked.shape[0] > 8 + 6
    np.testing.assert_array_equal(stacked[:8], red)
    np.testing.assert_array_equal(stacked[-6:], blue)
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f'wrote {path}' for path in written]
    assert save_figures([], str(tmp_path / 'none')) == []


def test_strip_module_prefix_keeps_metadata():
    from collections import OrderedDict

    from cribo_mm.visualization.inference import _strip_module_prefix
    state = OrderedDict([('module.a.weight', 1), ('b', 2)])
    state._metadata = OrderedDict([('module', {'version': 1}),
                                   ('module.a', {'version': 2})])
    out = _strip_module_prefix(state)
    assert list(out) == ['a.weight', 'b']
    assert out._metadata == OrderedDict([('', {'version': 1}),
                                         ('a', {'version': 2})])
    assert not hasattr(_strip_module_prefix({'x': 1}), '_metadata')
