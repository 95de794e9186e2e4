# Copyright (c) cribo-mm contributors. All rights reserved.
"""tools/test.py: MMSegmentation's --show-dir, --out and --tta."""
import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip('mmcv.ops')  # mmseg.models needs the compiled ops

from mmengine.config import Config  # noqa: E402

from tests.engine.tiny_config import (ROOT, import_tool,  # noqa: E402
                                      run_tool)
from tests.tools.test_mmseg_configs import (_config,  # noqa: E402
                                            _mmseg_scope, shrink,
                                            write_camvid)

TEST_TOOL = ROOT / 'tools' / 'test.py'
LINEAR = 'vit-s16_linear_1xb8-10k_camvid-352x352.py'
__all__ = ['_mmseg_scope']  # module-scoped autouse fixture, re-used


def _tool():
    return import_tool('tools/test.py', 'test_tool')


def _args(**kwargs):
    base = dict(show=False, show_dir=None, wait_time=2., tta=False, out=None,
                show_interval=None)
    base.update(kwargs)
    return argparse.Namespace(**base)


def test_options_change_the_config_as_mmseg_does():
    apply = _tool().apply_test_options
    cfg = _config(LINEAR)
    model = copy.deepcopy(cfg.model)
    apply(cfg, _args(tta=True, out='preds', show_dir='show'), LINEAR)
    assert cfg.model.type == 'SegTTAModel' and cfg.model.module == model
    assert cfg.test_dataloader.dataset.pipeline == cfg.tta_pipeline
    assert cfg.tta_pipeline[1].type == 'TestTimeAug'
    assert cfg.test_evaluator.output_dir == 'preds'
    assert cfg.test_evaluator.keep_results is True
    assert cfg.default_hooks.visualization.draw is True
    assert cfg.visualizer.save_dir == 'show'

    cfg = _config(LINEAR)
    apply(cfg, _args(show=True, wait_time=0.5, show_interval=1), LINEAR)
    hook = cfg.default_hooks.visualization
    assert hook.show is True and hook.wait_time == 0.5
    assert hook.interval == 1
    with pytest.raises(ValueError, match='show-interval'):
        apply(_config(LINEAR), _args(show_dir='x', show_interval=0), LINEAR)
    with pytest.raises(ValueError, match='cannot be used together'):
        apply(_config(LINEAR), _args(show=True, show_dir='x'), LINEAR)

    # an mmpretrain visualization hook: enable / out_dir
    cfg = Config(dict(default_hooks=dict(
        visualization=dict(type='VisualizationHook', enable=False))))
    apply(cfg, _args(show_dir='pics'), 'cls.py')
    assert cfg.default_hooks.visualization == dict(
        type='VisualizationHook', enable=True, out_dir='pics')
    # clear errors for what a config lacks
    with pytest.raises(KeyError, match='cls.py has no default_hooks'):
        apply(Config(dict(default_hooks=dict())), _args(show_dir='x'),
              'cls.py')
    with pytest.raises(KeyError, match='tta_pipeline / tta_model'):
        apply(Config(dict(model=dict())), _args(tta=True), 'cls.py')
    # several evaluators all keep their results
    cfg = Config(dict(test_evaluator=[dict(type='IoUMetric'),
                                      dict(type='IoUMetric')]))
    apply(cfg, _args(out='o'), 'x.py')
    assert all(m.output_dir == 'o' for m in cfg.test_evaluator)


@pytest.mark.slow
def test_tool_writes_pictures_and_predictions_with_tta(tmp_path):
    from mmseg.registry import MODELS
    rng = np.random.default_rng(0)
    data = tmp_path / 'camvid'
    write_camvid(data, dict(train=1, val=2), rng)
    cfg = shrink(_config(LINEAR), str(data), '', str(tmp_path / 'work'))
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model))
    ckpt = tmp_path / 'iter_2.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    config = tmp_path / 'tiny_camvid.py'
    cfg.dump(str(config))
    show, out = tmp_path / 'show', tmp_path / 'preds'
    run_tool([
        sys.executable, str(TEST_TOOL), str(config), str(ckpt),
        '--show-dir', str(show), '--show-interval', '1', '--out', str(out),
        '--tta', '--work-dir',
        str(tmp_path / 'work'), '--dump-metrics',
        str(tmp_path / 'metrics.json')
    ])
    # one painted picture and one label PNG per validation image
    pictures = sorted(Path(show).rglob('*.png'))
    assert len(pictures) == 2, pictures
    from PIL import Image
    preds = sorted(out.glob('*.png'))
    assert [p.name for p in preds] == ['val_0.png', 'val_1.png']
    for pred in preds:
        labels = np.asarray(Image.open(pred))
        assert labels.shape == (64, 80)  # the original image size
        assert labels.max() < 11
    import json
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    assert 0 <= metrics['mIoU'] <= 100
