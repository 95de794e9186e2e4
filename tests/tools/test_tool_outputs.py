# Copyright (c) cribo-mm contributors. All rights reserved.
"""Tools write under work_dirs/ by default, never into the repository."""
import re

import pytest

from tests.engine.tiny_config import ROOT, import_tool

TOOLS = ROOT / 'tools'


def _tool(relpath):
    path = TOOLS / relpath
    return import_tool(path, 'tool_' + path.stem)


@pytest.mark.parametrize('relpath, argv, attr, expected', [
    ('analysis/visualize_objects.py', ['c.py', 'x.pth'], 'out_dir',
     'work_dirs/vis_objects'),
    ('analysis/visualize_neighbours.py', ['c.py', 'x.pth'], 'out',
     'work_dirs/vis_neighbours/neighbours.png'),
    ('analysis/browse_dataset.py', ['c.py'], 'out_dir',
     'work_dirs/browse_dataset'),
    ('orl/visualize_pairs.py', ['corr.json'], 'out_dir',
     'work_dirs/orl_pairs'),
])
def test_visualisation_defaults_under_work_dirs(relpath, argv, attr,
                                                expected):
    args = _tool(relpath).parse_args(argv)
    assert getattr(args, attr) == expected
    assert getattr(args, attr).startswith('work_dirs/')
    # optional extra outputs are off unless asked for
    for extra in ('grid', 'show_dir'):
        assert getattr(args, extra, None) is None


def test_dense_nn_and_curves_defaults():
    args = _tool('analysis/dense_nn_retrieval.py').parse_args(
        ['c.py', 'none'])
    # work_dirs/dense_nn/<config>_<dataset> is filled in by main()
    assert args.work_dir is None and args.out is None
    assert args.show_dir is None
    curves = _tool('analysis/plot_training_curves.py')
    assert curves.parse_args(['work_dirs/run']).out is None  # next to it


def test_no_tool_defaults_into_docs():
    """Only the Makefile's readme-figures target writes docs/images."""
    pattern = re.compile(r"default\s*=\s*['\"](\./)?docs/")
    offenders = [
        str(p.relative_to(ROOT)) for p in TOOLS.rglob('*.py')
        if pattern.search(p.read_text())
    ]
    assert offenders == []
    lines = [
        line for line in (ROOT / 'Makefile').read_text().splitlines()
        if not line.lstrip().startswith('#')
    ]
    assert [line for line in lines if 'docs/' in line] == [
        'FIGURES := docs/images'
    ]
    makefile = '\n'.join(lines)
    target = makefile[makefile.index('\nreadme-figures:'):]
    for name in ('cribo_objects', 'cribo_neighbours', 'cribo_training_curves',
                 'orl_camvid_pairs'):
        assert f'$(FIGURES)/{name}.png' in target
    assert '$(FIGURES)' not in makefile[:makefile.index('\nreadme-figures:')]
