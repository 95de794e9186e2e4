# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL stage-2 tools (tools/orl/) on a few demo images, random weights."""
import argparse
import json
import sys

import numpy as np
import pytest

from cribo_mm.datasets.orl import (ORLAnnotationError, ORLPairDataset,
                                   filter_proposals, load_orl_json)
from tests.engine.tiny_config import ROOT

TOOLS = ROOT / 'tools' / 'orl'
CONFIG = str(ROOT / 'configs' / 'orl' / 'byol_resnet18-tiny_demo.py')
DATA = [
    'train_dataloader.dataset.num_train=12',
    'train_dataloader.dataset.num_val=1',
    'train_dataloader.dataset.image_size=[128,160]',
]


@pytest.fixture(scope='module')
def tools():
    sys.path.insert(0, str(TOOLS))
    try:
        import grid_proposals
        import knn_images
        import roi_pairs
        yield knn_images, grid_proposals, roi_pairs
    finally:
        sys.path.remove(str(TOOLS))


@pytest.fixture(scope='module')
def stage2(tools, tmp_path_factory):
    knn_images, grid_proposals, roi_pairs = tools
    tmp = tmp_path_factory.mktemp('orl_stage2')
    mp = pytest.MonkeyPatch()
    mp.setenv('CRIBO_DEMO_ROOT', str(tmp / 'demo'))
    try:
        knn = knn_images.main([
            CONFIG, 'none', '--out',
            str(tmp / 'knn.json'), '--k', '3', '--resize', '40', '--crop',
            '32', '--cfg-options', *DATA
        ])
    finally:
        mp.undo()
    root = knn['images']['file_name']
    props = grid_proposals.main([
        '--images',
        str(tmp / 'knn.json'), '--out',
        str(tmp / 'props.json'), '--sizes', '96', '128', '--img-root',
        str(tmp / 'demo' / 'v1-seed0-128x160-12+1' / 'train' / 'images')
    ])
    return tmp, knn, props, root


def test_knn_file(stage2):
    tmp, knn, _, names = stage2
    data = load_orl_json(str(tmp / 'knn.json'), 'knn')
    assert data == knn
    assert names == [f'{i:05d}.jpg' for i in range(12)]
    rows = np.array(knn['pseudo_annotations']['knn_image_id'])
    assert rows.shape == (12, 3)
    assert (rows != np.arange(12)[:, None]).all()


def test_roi_pairs_cached_once_and_readable(tools, stage2):
    _, _, roi_pairs = tools
    tmp, _, props, _ = stage2
    img_root = str(tmp / 'demo' / 'v1-seed0-128x160-12+1' / 'train' / 'images')
    args = [
        CONFIG, 'none', '--knn',
        str(tmp / 'knn.json'), '--proposals',
        str(tmp / 'props.json'), '--img-root', img_root, '--roi-size', '32'
    ]
    out = roi_pairs.main(args + ['--out', str(tmp / 'corr.json')])
    ann = out['pseudo_annotations']
    for boxes, kept in zip(props['pseudo_annotations']['bbox'], ann['bbox']):
        assert kept == [[float(v) for v in b] for b in filter_proposals(boxes)]
    for i, per_nb in enumerate(ann['knn_bbox_pair']):
        assert len(per_nb) == 3
        n = len(ann['bbox'][i])
        for pairs in per_nb:
            assert len(pairs) == max(1, n // 10)
            for p in pairs:
                assert p[:4] in ann['bbox'][i]
    ds = ORLPairDataset(ann_file=str(tmp / 'corr.json'), data_prefix=img_root)
    assert len(ds) == 12
    # a disk cache gives the same file
    cached = roi_pairs.main(
        args +
        ['--out',
         str(tmp / 'corr2.json'), '--cache-dir',
         str(tmp / 'cache')])
    assert json.dumps(
        cached, sort_keys=True) == json.dumps(
            out, sort_keys=True)
    assert len(list((tmp / 'cache').glob('*.npy'))) == 12


def test_roi_pairs_rejects_mismatched_images(tools, stage2, tmp_path):
    _, _, roi_pairs = tools
    tmp, _, props, _ = stage2
    bad = json.loads(json.dumps(props))
    bad['images']['file_name'][0] = 'other.jpg'
    (tmp_path / 'props.json').write_text(json.dumps(bad))
    with pytest.raises(ORLAnnotationError, match='images'):
        roi_pairs.main([
            CONFIG, 'none', '--knn',
            str(tmp / 'knn.json'), '--proposals',
            str(tmp_path / 'props.json'), '--out',
            str(tmp_path / 'c.json')
        ])


@pytest.mark.parametrize(
    'argv,view,roi', [([], 128, 64), (['--quick'], 64, 32),
                      (['--view-size', '224', '--roi-size', '96'], 224, 96)])
def test_demo_plan_applies_to_the_configs(tools, argv, view, roi):
    from mmengine.config import Config, DictAction
    sys.path.insert(0, str(TOOLS))
    try:
        import run_demo
    finally:
        sys.path.remove(str(TOOLS))
    knn_images, _, roi_pairs = tools
    plan = run_demo.demo_plan(run_demo.parse_args(argv))

    def merged(config, options):
        # as tools/train.py applies --cfg-options
        parser = argparse.ArgumentParser()
        parser.add_argument('--cfg-options', nargs='+', action=DictAction)
        cfg = Config.fromfile(config)
        cfg.merge_from_dict(
            parser.parse_args(['--cfg-options', *options]).cfg_options)
        return cfg

    cfg1 = merged(run_demo.STAGE1, plan['stage1'])
    views = cfg1.train_dataloader.dataset.pipeline[1].transforms
    assert [v[0].scale for v in views] == [view, view]
    cfg3 = merged(run_demo.STAGE3, plan['stage3'])
    branch = cfg3.train_dataloader.dataset.pipeline[3]
    assert [p[0].scale for p in branch.img_pipelines] == [view, view]
    assert branch.roi_size == roi
    # the tools accept the generated arguments
    args = knn_images.parse_args([CONFIG, 'none', '--out', 'x.json'] +
                                 plan['knn'])
    assert args.crop == view
    args = roi_pairs.parse_args(
        [CONFIG, 'none', '--knn', 'k', '--proposals', 'p', '--out', 'o'] +
        plan['roi_pairs'])
    assert args.roi_size == view
