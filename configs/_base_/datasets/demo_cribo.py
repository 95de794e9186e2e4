# Copyright (c) cribo-mm contributors. All rights reserved.
# The embedded demo scenes (generated on first use into
# $CRIBO_DEMO_ROOT or ~/.cache/cribo_mm/demo_scenes; no download).
_base_ = ['./cribo_pipeline.py']

train_dataloader = dict(
    batch_size=16,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(
        type='CrIBoDemoScenes',
        split='train',
        seed=0,
        num_train=256,
        num_val=64,
        image_size=(256, 256)))
