# Copyright (c) cribo-mm contributors. All rights reserved.
# DINO twin of the demo's CPU recipe: identical to configs/cribo/
# vit-t16_demo.py (backbone, heads, data, augmentations, schedule, teacher,
# seed, budget) but without the object terms (no clustering, no memory
# bank), so the two differ only in what CrIBo adds.
_base_ = ['../cribo/vit-t16_demo.py']
model = dict(object_terms=False)
# the object last layer gets no gradient
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
