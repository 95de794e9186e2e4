# DINO baseline of the demo: identical to configs/cribo/vit-t16_demo.py but
# without the object terms (no clustering, no memory bank).
_base_ = ['../cribo/vit-t16_demo.py']
model = dict(object_terms=False)
# the object last layer gets no gradient
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
