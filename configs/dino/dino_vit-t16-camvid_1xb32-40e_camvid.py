# DINO baseline for CamVid: identical to
# configs/cribo/cribo_vit-t16-camvid_1xb32-40e_camvid.py (backbone, heads,
# data, augmentations, schedule, seed) without the object terms.
_base_ = ['../cribo/cribo_vit-t16-camvid_1xb32-40e_camvid.py']
model = dict(object_terms=False)
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
