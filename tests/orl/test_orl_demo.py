# Copyright (c) cribo-mm contributors. All rights reserved.
"""The ORL demo pipeline (tools/orl/run_pipeline.py --quick) end to end."""
import sys

import pytest

from cribo_mm.datasets.orl import load_orl_json
from cribo_mm.utils.checkpoint_io import load_checkpoint_file
from tests.engine.tiny_config import ROOT, run_tool

pytestmark = pytest.mark.slow


def _run(work, tmp_path):
    return run_tool([
        sys.executable,
        str(ROOT / 'tools' / 'orl' / 'run_pipeline.py'), '--quick',
        '--work-dir',
        str(work)
    ],
                    extra_env=dict(CRIBO_DEMO_ROOT=str(tmp_path / 'demo')))


def test_orl_demo_pipeline(tmp_path):
    work = tmp_path / 'orl_demo'
    _run(work, tmp_path)
    knn = load_orl_json(str(work / 'stage2' / 'knn.json'), 'knn')
    assert len(knn['images']['file_name']) == 24
    corr = load_orl_json(
        str(work / 'stage2' / 'correspondence.json'), 'correspondence')
    assert all(
        len(per) == 10 for per in corr['pseudo_annotations']['knn_bbox_pair'])
    stage1 = load_checkpoint_file(str(work / 'stage1' / 'epoch_1.pth'))
    assert any(k.startswith('target_net.') for k in stage1['state_dict'])
    stage3 = load_checkpoint_file(str(work / 'stage3' / 'epoch_1.pth'))
    keys = stage3['state_dict']
    for part in ('backbone.', 'neck.', 'head.', 'intra_head.', 'inter_head.',
                 'target_net.module.0.'):
        assert any(k.startswith(part) for k in keys), part
    assert int(keys['target_net.steps']) == 6  # 24 images / batch 4
    # stage 3 starts from scratch: its backbone differs from stage 1's
    w = 'backbone.conv1.weight'
    assert not stage3['state_dict'][w].equal(stage1['state_dict'][w])

    # running the command again resumes every stage: nothing is retrained
    # or re-embedded, the outputs stay byte-identical
    outputs = [
        work / 'stage1' / 'epoch_1.pth', work / 'stage3' / 'epoch_1.pth',
        work / 'stage2' / 'correspondence.json'
    ]
    before = [p.read_bytes() for p in outputs]
    again = _run(work, tmp_path)
    assert 'Epoch(train)' not in again.stdout + again.stderr
    assert '0 RoI forwards in this run' in again.stdout
    assert [p.read_bytes() for p in outputs] == before
