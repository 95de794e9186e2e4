# Runtime shared by all cribo-mm pretraining configs.
default_scope = 'mmpretrain'
custom_imports = dict(imports=['cribo_mm'], allow_failed_imports=False)

default_hooks = dict(
    # mmengine's timer, with the ETA starting after the first iteration
    timer=dict(type='CrIBoIterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', interval=1, max_keep_ckpts=3, save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # mmengine falls back to gloo when CUDA is unavailable.
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [
    dict(type='LocalVisBackend'),
    dict(type='TensorboardVisBackend'),
]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_processor = dict(window_size=10)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, diff_rank_seed=True, deterministic=False)
