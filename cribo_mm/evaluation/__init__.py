# Copyright (c) cribo-mm contributors. All rights reserved.
"""Evaluation protocols of cribo-mm."""
from .dense_nn import (DenseNNSettings, IoUAccumulator, build_backbone,
                       build_memory, build_seg_dataset, evaluate_retrieval,
                       knn_label_transfer, knn_search,
                       load_backbone_weights, patch_label_distributions,
                       predict_segmentation, run_dense_nn_retrieval,
                       sample_memory_patches)

__all__ = [
    'DenseNNSettings', 'IoUAccumulator', 'build_backbone', 'build_memory',
    'build_seg_dataset', 'evaluate_retrieval', 'knn_label_transfer',
    'knn_search', 'load_backbone_weights', 'patch_label_distributions',
    'predict_segmentation', 'run_dense_nn_retrieval', 'sample_memory_patches'
]
