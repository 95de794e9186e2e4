# Copyright (c) cribo-mm contributors. All rights reserved.
"""configs/cribo/vit-s16_folder.py: any image folder from the command line."""
import numpy as np
import pytest
import torch
from mmengine.config import Config, DictAction
from PIL import Image

from tests.engine.tiny_config import ROOT

FOLDER_CONFIG = ROOT / 'configs' / 'cribo' / 'vit-s16_folder.py'
COCO_CONFIG = ROOT / 'configs' / 'cribo' / 'vit-s16_coco.py'


@pytest.fixture
def mmpretrain_scope():
    from mmengine.registry import init_default_scope

    import cribo_mm  # noqa: F401
    init_default_scope('mmpretrain')


def _images(root):
    rng = np.random.RandomState(0)
    paths = [root / 'a.jpg', root / 'sub' / 'b.png', root / 'sub' / 'c.JPG']
    for k, path in enumerate(paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        rgb = rng.randint(0, 255, (40 + 8 * k, 56, 3), np.uint8)
        Image.fromarray(rgb).save(path, format='PNG' if k == 1 else 'JPEG')
    (root / 'notes.txt').write_text('not an image')
    return paths


def _cfg_options(*pairs):
    """Parse ``key=value`` pairs as tools/train.py's ``--cfg-options``."""
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(['--cfg-options', *pairs]).cfg_options


def test_folder_config_builds_dataset_from_data_root_override(
        tmp_path, mmpretrain_scope):
    from mmpretrain.registry import DATASETS
    paths = _images(tmp_path / 'my_images')
    cfg = Config.fromfile(FOLDER_CONFIG)
    cfg.merge_from_dict(
        _cfg_options(
            f'train_dataloader.dataset.data_root={tmp_path / "my_images"}'))
    dataset_cfg = cfg.train_dataloader.dataset
    assert dataset_cfg.type == 'CrIBoImageFolder'
    assert 'ann_file' not in dataset_cfg and 'missing' not in dataset_cfg
    # everything but the data set is the COCO setting
    coco = Config.fromfile(COCO_CONFIG)
    assert cfg.model == coco.model
    assert cfg.custom_hooks == coco.custom_hooks
    assert cfg.train_dataloader.batch_size == 32
    assert dataset_cfg.pipeline == coco.train_dataloader.dataset.pipeline

    dataset = DATASETS.build(dataset_cfg)
    found = [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]
    assert sorted(found) == sorted(str(p) for p in paths)
    sample = dataset[1]
    views = sample['inputs']
    assert len(views) == 2
    assert all(v.shape == (3, 224, 224) and v.dtype == torch.uint8
               for v in views)
    assert sample['data_samples'].crop_bbox.shape == (2, 4)


def test_folder_config_missing_folder_is_named(tmp_path, mmpretrain_scope):
    from mmpretrain.registry import DATASETS
    cfg = Config.fromfile(FOLDER_CONFIG)
    missing = tmp_path / 'nowhere'
    cfg.merge_from_dict({'train_dataloader.dataset.data_root': str(missing)})
    with pytest.raises(FileNotFoundError, match='nowhere'):
        DATASETS.build(cfg.train_dataloader.dataset)
