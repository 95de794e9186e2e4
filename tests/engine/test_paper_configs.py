# Copyright (c) cribo-mm contributors. All rights reserved.
"""The three paper configs build and train two iterations on CPU.

Their data sets (COCO, ImageNet) are swapped for the embedded demo scenes,
views shrink to 128 px, the batch to 2 and the bank to 8 images; network,
heads, clustering, hook and schedule are the configs' own.
"""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from tests.engine.tiny_config import ROOT

pytestmark = pytest.mark.slow

PAPER_CONFIGS = ['vit-s16_coco.py', 'vit-s16_in1k.py', 'vit-b16_in1k.py']


def _shrink(cfg, work_dir, crop=128):
    demo = Config.fromfile(ROOT / 'configs/_base_/datasets/demo_cribo.py')
    dataset = copy.deepcopy(demo.train_dataloader.dataset)
    dataset.update(num_train=4, num_val=2, image_size=(160, 200))
    dataset.pipeline = copy.deepcopy(cfg.train_dataloader.dataset.pipeline)
    for view in dataset.pipeline[1].transforms:
        assert view[0].type == 'CrIBoRandomResizedCrop'
        view[0].size = crop
    cfg.train_dataloader.dataset = dataset
    cfg.train_dataloader.update(batch_size=2, num_workers=0,
                                persistent_workers=False)
    cfg.model.backbone.img_size = crop
    cfg.model.memory_bank.num_images = 8
    if cfg.optim_wrapper.type == 'AmpOptimWrapper':
        # mmengine's fp16 AMP needs a GPU; what --amp does: bf16 on a CPU
        from cribo_mm.engine.optimizers import enable_amp
        enable_amp(cfg.optim_wrapper)
    cfg.train_cfg.max_epochs = 1
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = 100
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.work_dir = str(work_dir)
    return cfg


@pytest.mark.parametrize('name', PAPER_CONFIGS)
def test_paper_config_trains_two_iterations(name, tmp_path):
    cfg = Config.fromfile(ROOT / 'configs' / 'cribo' / name)
    hook = cfg.custom_hooks[0]
    assert hook.type == 'CrIBoHook'
    runner = Runner.from_cfg(_shrink(cfg, tmp_path))
    runner.train()
    assert runner.iter == 2
    model = runner.model
    assert int(model.teacher.steps) == 2
    assert int(model.memory_bank.num_inserted) == 4
    params = dict(model.named_parameters())
    assert torch.isfinite(params['backbone.cls_token']).all()
    wrapper = runner.optim_wrapper
    assert len(wrapper.optimizer.param_groups) == 2  # decay / no decay
    if name.startswith('vit-s16'):  # fp16 configs: bf16 on a CPU
        assert type(wrapper).__name__ == 'CrIBoAmpOptimWrapper'
        expected = (torch.float16
                    if torch.cuda.is_available() else torch.bfloat16)
        assert wrapper.cast_dtype == expected
