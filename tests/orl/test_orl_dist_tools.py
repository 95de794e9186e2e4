# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL stage-2 tools sharded over two torchrun ranks (gloo, CPU)."""
import json
import sys

import pytest

from cribo_mm.datasets.demo_scenes import demo_scenes_root
from tests.engine.test_dist_train import _free_port
from tests.engine.tiny_config import ROOT, run_tool

pytestmark = pytest.mark.slow

TOOLS = ROOT / 'tools' / 'orl'
CONFIG = str(ROOT / 'configs' / 'orl' / 'byol_resnet18-tiny_demo.py')
DATA = [
    'train_dataloader.dataset.num_train=10',
    'train_dataloader.dataset.num_val=1',
    'train_dataloader.dataset.image_size=[128,160]',
]


def _tool(name, args, env, nproc=None):
    """Run tools/orl/<name>.py, in one process or under torchrun."""
    if nproc is None:
        cmd = [sys.executable, str(TOOLS / f'{name}.py'), *args]
    else:
        cmd = [
            sys.executable, '-m', 'torch.distributed.run',
            f'--nproc_per_node={nproc}', f'--master_port={_free_port()}',
            str(TOOLS / f'{name}.py'), *args, '--launcher', 'pytorch'
        ]
    return run_tool(cmd, extra_env=env, timeout=600)


def test_two_ranks_write_the_single_process_files(tmp_path):
    env = dict(CRIBO_DEMO_ROOT=str(tmp_path / 'demo'))
    img_root = str(
        demo_scenes_root(
            num_train=10, num_val=1, image_size=(128, 160),
            cache_root=tmp_path / 'demo') / 'train' / 'images')
    files = {}
    for mode, nproc in (('single', None), ('dist', 2)):
        out = tmp_path / mode
        knn = [
            CONFIG, 'none', '--out',
            str(out / 'knn.json'), '--k', '3', '--resize', '40', '--crop',
            '32', '--chunk-size', '3', '--cfg-options', *DATA
        ]
        _tool('knn_images', knn, env, nproc)
        props = str(out / 'props.json')
        _tool('selective_search', [
            '--images',
            str(out / 'knn.json'), '--img-root', img_root, '--out', props,
            '--workers', '0', '--chunk-size', '4'
        ], env, nproc)
        pairs = [
            CONFIG, 'none', '--knn',
            str(out / 'knn.json'), '--proposals', props, '--img-root',
            img_root, '--roi-size', '32', '--chunk-size', '3', '--out',
            str(out / 'corr.json')
        ]
        proc = _tool('roi_pairs', pairs, env, nproc)
        files[mode] = {
            n: json.loads((out / n).read_text())
            for n in ('knn.json', 'props.json', 'corr.json')
        }
        if nproc:
            # 4 chunks of 3 images: each rank stored its own two
            done = sorted(
                p.name for p in (out / 'corr.json.work' /
                                 'roi_embeddings').glob('*.done'))
            assert len(done) == 4
            assert proc.stdout.count('RoI pairs,') == 1  # rank 0 merges
    assert files['dist'] == files['single']
