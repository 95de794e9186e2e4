# Copyright (c) cribo-mm contributors. All rights reserved.
"""The plugin builds as a wheel and installs into an existing OpenMMLab
environment without touching it.

The wheel is built offline from a copy of the sources (nothing is written
into the checkout) and installed with ``--no-deps`` into a throwaway
virtual environment that sees the test environment's packages (the
"existing OpenMMLab environment") through a path entry, so the pinned stack
is used as it is and cannot change. The installed copy (not the checkout)
must import, register its components and declare version ranges that the
stack satisfies.
"""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.engine.tiny_config import ROOT

pytestmark = pytest.mark.slow

CHECK = r'''
import json, sys
from importlib import metadata
from packaging.requirements import Requirement
import cribo_mm
from mmpretrain.registry import DATASETS, HOOKS, MODELS
from mmseg.registry import DATASETS as SEG_DATASETS
names = dict(
    model=[n for n in ('CrIBo', 'CrIBoLoss', 'CrIBoVisionTransformer')
           if MODELS.get(n) is None],
    hook=[n for n in ('CrIBoHook', 'CrIBoIterTimerHook')
          if HOOKS.get(n) is None],
    dataset=[n for n in ('CrIBoImageFolder', ) if DATASETS.get(n) is None],
    seg=[n for n in ('CrIBoCamVidDataset', ) if SEG_DATASETS.get(n) is None])
dist = metadata.distribution('cribo-mm')
unmet = []
for text in dist.requires or []:
    req = Requirement(text)
    if req.marker is not None and not req.marker.evaluate({'extra': ''}):
        continue  # optional extras
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        unmet.append(f'{req} (missing)')
        continue
    if not req.specifier.contains(version, prereleases=True):
        unmet.append(f'{req} (installed {version})')
print(json.dumps(dict(
    file=cribo_mm.__file__, version=cribo_mm.__version__,
    missing=names, unmet=unmet, requires=dist.requires,
    python=dist.metadata['Requires-Python'])))
'''


def _run(args, cwd, timeout=300):
    # a PYTHONPATH naming a checkout would shadow the installed copy
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, env=env)
    assert proc.returncode == 0, (
        f'{" ".join(map(str, args))}:\n{proc.stdout[-3000:]}\n'
        f'{proc.stderr[-3000:]}')
    return proc


def _stack_listing():
    site = Path(sysconfig.get_paths()['purelib'])
    return sorted(p.name for p in site.iterdir())


def test_wheel_installs_into_an_existing_environment(tmp_path):
    # the sources a wheel needs, copied: the checkout stays untouched
    src = tmp_path / 'src'
    src.mkdir()
    for name in ('pyproject.toml', 'README.md'):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / 'cribo_mm', src / 'cribo_mm',
        ignore=shutil.ignore_patterns('__pycache__'))
    dist = tmp_path / 'dist'
    before = _stack_listing()
    checkout = sorted(p.name for p in ROOT.iterdir())
    _run([
        sys.executable, '-m', 'pip', 'wheel', '--no-deps',
        '--no-build-isolation', '--no-index', '-q', '-w', dist, src
    ], cwd=tmp_path)
    wheels = list(dist.glob('cribo_mm-*.whl'))
    assert len(wheels) == 1, wheels

    # a throwaway environment that sees the existing stack
    env = tmp_path / 'venv'
    _run([sys.executable, '-m', 'venv', '--without-pip', env], cwd=tmp_path)
    python = env / 'bin' / 'python'
    env_site = Path(
        _run([
            python, '-c',
            'import sysconfig; print(sysconfig.get_paths()["purelib"])'
        ], cwd=tmp_path).stdout.strip())
    stack_site = sysconfig.get_paths()['purelib']
    (env_site / 'existing_openmmlab_env.pth').write_text(stack_site + '\n')
    _run([
        sys.executable, '-m', 'pip', '--python', python, 'install',
        '--no-deps', '--no-index', '-q', wheels[0]
    ], cwd=tmp_path)

    out = _run([python, '-c', CHECK], cwd=tmp_path).stdout
    info = json.loads(out.strip().splitlines()[-1])
    # the installed copy, not the checkout, was imported
    assert Path(info['file']).resolve().is_relative_to(env_site.resolve())
    assert info['missing'] == dict(model=[], hook=[], dataset=[], seg=[])
    # ranges (not pins) that the pinned stack satisfies
    assert info['unmet'] == []
    requires = [r for r in info['requires'] if 'extra ==' not in r]
    assert any(r.startswith('mmengine') and '<' in r for r in requires)
    assert not any('==' in r for r in requires), requires
    assert info['python'].startswith('>=')
    # the existing environment is exactly as before
    assert _stack_listing() == before
    # and nothing was built inside the checkout
    assert sorted(p.name for p in ROOT.iterdir()) == checkout
