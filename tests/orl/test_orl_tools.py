# Copyright (c) cribo-mm contributors. All rights reserved.
"""ORL stage-2 tools (tools/orl/) on a few demo images, random weights."""
import argparse
import json
import sys

import numpy as np
import pytest

from cribo_mm.datasets.demo_scenes import demo_scenes_root
from cribo_mm.datasets.orl import (ORLAnnotationError, ORLPairDataset,
                                   load_orl_json)
from cribo_mm.orl_mining import filter_proposals
from tests.engine.tiny_config import ROOT

TOOLS = ROOT / 'tools' / 'orl'
CONFIG = str(ROOT / 'configs' / 'orl' / 'byol_resnet18-tiny_demo.py')
DATA = [
    'train_dataloader.dataset.num_train=12',
    'train_dataloader.dataset.num_val=1',
    'train_dataloader.dataset.image_size=[128,160]',
]


# The demo images' folder under the test's cache root (the cache folder name
# carries the demo version).
IMG_DIR = demo_scenes_root(
    num_train=12, num_val=1, image_size=(128, 160),
    cache_root='demo').joinpath('train', 'images').parts


@pytest.fixture(scope='module')
def tools():
    sys.path.insert(0, str(TOOLS))
    try:
        import knn_images
        import roi_pairs
        import selective_search
        yield knn_images, selective_search, roi_pairs
    finally:
        sys.path.remove(str(TOOLS))


@pytest.fixture(scope='module')
def stage2(tools, tmp_path_factory):
    knn_images, selective_search, roi_pairs = tools
    tmp = tmp_path_factory.mktemp('orl_stage2')
    mp = pytest.MonkeyPatch()
    mp.setenv('CRIBO_DEMO_ROOT', str(tmp / 'demo'))
    try:
        knn = knn_images.main([
            CONFIG, 'none', '--out',
            str(tmp / 'knn.json'), '--k', '3', '--resize', '40', '--crop',
            '32', '--chunk-size', '5', '--cfg-options', *DATA
        ])
    finally:
        mp.undo()
    root = knn['images']['file_name']
    props = selective_search.main([
        '--images',
        str(tmp / 'knn.json'), '--out',
        str(tmp / 'props.json'), '--workers', '0', '--img-root',
        str(tmp.joinpath(*IMG_DIR))
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
    # chunks of 5 images: 3 stored chunks
    work = tmp / 'knn.json.work' / 'image_embeddings'
    assert len(list(work.glob('chunk_*.done'))) == 3


def test_selective_search_file(stage2):
    import cv2

    from cribo_mm.orl_mining import selective_search
    tmp, knn, props, _ = stage2
    assert load_orl_json(str(tmp / 'props.json'), 'proposals') == props
    assert props['images'] == knn['images']
    img_dir = tmp.joinpath(*IMG_DIR)
    for name, boxes in zip(props['images']['file_name'],
                           props['pseudo_annotations']['bbox']):
        img = cv2.imread(str(img_dir / name))
        # every box of OpenCV, in its order, seeded per image
        assert boxes == selective_search(img, 'fast', seed=0)
        b = np.array(boxes)
        assert (b[:, :2] >= 0).all() and (b[:, 2:] > 0).all()
        assert (b[:, 0] + b[:, 2] <= img.shape[1]).all()
        assert (b[:, 1] + b[:, 3] <= img.shape[0]).all()


def test_roi_pairs_readable_and_embedded_once(tools, stage2, capsys):
    _, _, roi_pairs = tools
    tmp, _, props, _ = stage2
    img_root = str(tmp.joinpath(*IMG_DIR))
    args = [
        CONFIG, 'none', '--knn',
        str(tmp / 'knn.json'), '--proposals',
        str(tmp / 'props.json'), '--img-root', img_root, '--roi-size', '32',
        '--chunk-size', '4', '--work-dir',
        str(tmp / 'roi_work')
    ]
    capsys.readouterr()
    out = roi_pairs.main(args + ['--out', str(tmp / 'corr.json')])
    ann = out['pseudo_annotations']
    for boxes, kept in zip(props['pseudo_annotations']['bbox'], ann['bbox']):
        assert kept == [[float(v) for v in b] for b in filter_proposals(boxes)]
    for i, per_nb in enumerate(ann['knn_bbox_pair']):
        assert len(per_nb) == 3
        n = len(ann['bbox'][i])
        for j, pairs in zip(ann['knn_image_id'][i], per_nb):
            assert len(pairs) == max(1, n // 10)
            for p in pairs:
                assert p[:4] in ann['bbox'][i]
                assert p[4:] in ann['bbox'][j]
    ds = ORLPairDataset(ann_file=str(tmp / 'corr.json'), data_prefix=img_root)
    assert len(ds) == 12
    # every kept box is embedded once (the authors: once per appearance)
    total = sum(len(b) for b in ann['bbox'])
    assert f'{total} RoI forwards in this run' in capsys.readouterr().out
    # a rerun resumes: nothing is embedded again, the file is the same
    again = roi_pairs.main(args + ['--out', str(tmp / 'corr2.json')])
    assert '0 RoI forwards in this run' in capsys.readouterr().out
    assert json.dumps(again, sort_keys=True) == json.dumps(out, sort_keys=True)


def test_roi_pairs_equal_the_in_memory_reference(tools, stage2):
    """The sharded two-phase tool gives build_correspondence's file."""
    from mmengine.config import Config

    from cribo_mm.orl_mining import (RoIEmbedder, build_correspondence,
                                     build_stage1_network)
    _, _, roi_pairs = tools
    tmp, knn, props, _ = stage2
    img_root = tmp.joinpath(*IMG_DIR)
    out = json.loads((tmp / 'corr.json').read_text()) if (
        tmp / 'corr.json').exists() else roi_pairs.main([
            CONFIG, 'none', '--knn',
            str(tmp / 'knn.json'), '--proposals',
            str(tmp / 'props.json'), '--img-root',
            str(img_root), '--roi-size', '32', '--out',
            str(tmp / 'corr.json')
        ])
    model = build_stage1_network(Config.fromfile(CONFIG))
    paths = [str(img_root / n) for n in knn['images']['file_name']]
    ref = build_correspondence(knn['images'],
                               props['pseudo_annotations']['bbox'],
                               knn['pseudo_annotations']['knn_image_id'],
                               RoIEmbedder(model, paths, 32),
                               info=out['info'])
    assert json.dumps(ref, sort_keys=True) == json.dumps(out, sort_keys=True)


def test_hand_started_shards_merge_to_the_same_file(tools, stage2, tmp_path,
                                                    capsys):
    knn_images, selective_search, roi_pairs = tools
    tmp, knn, props, _ = stage2
    img_root = str(tmp.joinpath(*IMG_DIR))
    base = [
        CONFIG, 'none', '--knn',
        str(tmp / 'knn.json'), '--proposals',
        str(tmp / 'props.json'), '--img-root', img_root, '--roi-size', '32',
        '--chunk-size', '3', '--out',
        str(tmp_path / 'corr.json')
    ]
    assert roi_pairs.main(base + ['--shard', '1/3']) is None
    assert 'run the command again without --shard' in capsys.readouterr().out
    assert roi_pairs.main(base + ['--shard', '0/3']) is None
    assert not (tmp_path / 'corr.json').exists()
    # the last run finishes shard 2's chunks itself and merges
    merged = roi_pairs.main(base)
    ref = roi_pairs.main(base[:-1] + [str(tmp_path / 'ref.json')])
    assert json.dumps(merged, sort_keys=True) == json.dumps(ref,
                                                            sort_keys=True)
    # selective search: same with shards and in-process workers
    sargs = [
        '--images',
        str(tmp / 'knn.json'), '--out',
        str(tmp_path / 'props.json'), '--workers', '0', '--img-root',
        img_root, '--chunk-size', '5'
    ]
    assert selective_search.main(sargs + ['--shard', '1/2']) is None
    assert selective_search.main(sargs) == props


def test_resuming_with_other_settings_is_refused(tools, stage2, tmp_path):
    from cribo_mm.utils.sharded_job import ShardedJobError
    knn_images = tools[0]
    tmp = stage2[0]
    out = str(tmp / 'knn.json')  # its work folder holds crop 32
    with pytest.raises(ShardedJobError, match='crop=32'):
        mp = pytest.MonkeyPatch()
        mp.setenv('CRIBO_DEMO_ROOT', str(tmp / 'demo'))
        try:
            knn_images.main([
                CONFIG, 'none', '--out', out, '--k', '3', '--resize', '40',
                '--crop', '24', '--chunk-size', '5', '--cfg-options', *DATA
            ])
        finally:
            mp.undo()


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
        import run_pipeline
    finally:
        sys.path.remove(str(TOOLS))
    knn_images, selective_search, roi_pairs = tools
    plan = run_pipeline.demo_plan(run_pipeline.parse_args(argv))

    def merged(config, options):
        # as tools/train.py applies --cfg-options
        parser = argparse.ArgumentParser()
        parser.add_argument('--cfg-options', nargs='+', action=DictAction)
        cfg = Config.fromfile(config)
        cfg.merge_from_dict(
            parser.parse_args(['--cfg-options', *options]).cfg_options)
        return cfg

    cfg1 = merged(run_pipeline.STAGE1, plan['stage1'])
    views = cfg1.train_dataloader.dataset.pipeline[1].transforms
    assert [v[0].scale for v in views] == [view, view]
    cfg3 = merged(run_pipeline.STAGE3, plan['stage3'])
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
    args = selective_search.parse_args(['--images', 'k', '--out', 'p'] +
                                       plan['proposals'])
    assert args.workers == (0 if '--quick' in argv else 2)


def test_visualize_pairs(tools, stage2, tmp_path):
    from cribo_mm.visualization import load_png
    from cribo_mm.visualization.figures import compose_roi_pairs
    sys.path.insert(0, str(TOOLS))
    try:
        import visualize_pairs
    finally:
        sys.path.remove(str(TOOLS))
    tmp = stage2[0]
    img_root = str(tmp.joinpath(*IMG_DIR))
    corr = str(tmp_path / 'corr.json')
    tools[2].main([
        CONFIG, 'none', '--knn',
        str(tmp / 'knn.json'), '--proposals',
        str(tmp / 'props.json'), '--img-root', img_root, '--roi-size', '32',
        '--out', corr
    ])
    files = visualize_pairs.main([
        corr, '--img-root', img_root, '--images', '3', '5', '--neighbours',
        '2', '--height', '64', '--out-dir',
        str(tmp_path), '--grid',
        str(tmp_path / 'grid.png')
    ])
    assert [p.split('/')[-1] for p in files] == [
        'pairs_000003.png', 'pairs_000005.png', 'grid.png'
    ]
    one = load_png(files[0])
    assert one.ndim == 3 and one.shape[0] > 2 * 64  # two neighbour rows
    assert load_png(files[2]).shape[0] > one.shape[0]
    with pytest.raises(IndexError, match='row 99'):
        visualize_pairs.main([corr, '--images', '99'])
    # the pure figure: one coloured box and number per pair in each panel,
    # thin grey boxes for the other kept boxes
    img = np.zeros((40, 50, 3), np.uint8)
    pixels, items = compose_roi_pairs(
        img, img, [[0, 0, 10, 10, 5, 5, 20, 20], [1, 1, 5, 5, 2, 2, 3, 3]],
        kept=[[0, 0, 10, 10], [1, 1, 5, 5], [20, 20, 5, 5]],
        height=80)
    boxes = [i for i in items if i['kind'] == 'box']
    assert len(boxes) == 3 + 2 * 2
    assert pixels.shape[0] == 80
    # scaled by 2, the neighbour panel shifted right of the first (100 px)
    assert boxes[3]['box'] == [0., 0., 20., 20.]
    assert boxes[4]['box'][0] > 100 and boxes[4]['box'][2] - boxes[4][
        'box'][0] == 40.
    assert boxes[3]['color'] == boxes[4]['color'] != boxes[5]['color']


def test_inputs_are_identified_by_content(tmp_path):
    """A checkpoint retrained in place (same name and size) must not reuse
    the chunks of the old one."""
    sys.path.insert(0, str(TOOLS))
    try:
        from _common import file_signature
    finally:
        sys.path.remove(str(TOOLS))
    f = tmp_path / 'epoch_800.pth'
    f.write_bytes(b'a' * 100)
    old = file_signature(str(f))
    f.write_bytes(b'b' * 100)
    assert file_signature(str(f)) != old
    assert file_signature(str(f))['name'] == 'epoch_800.pth'
    assert file_signature(None) == dict(path=None)


def test_launcher_and_shard_options_are_checked(tools, monkeypatch):
    import torch
    knn_images = tools[0]
    base = [CONFIG, 'none', '--out', 'unused.json']
    with pytest.raises(ValueError, match='exclusive'):
        knn_images.main(base + ['--shard', '0/2', '--launcher', 'pytorch'])
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(ValueError, match='SLURM_ARRAY_TASK_ID'):
        knn_images.main(base + ['--launcher', 'slurm'])
    with pytest.raises(ValueError, match='--shard must be i/n'):
        knn_images.main(base + ['--shard', 'half'])
