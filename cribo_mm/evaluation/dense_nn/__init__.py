# Copyright (c) cribo-mm contributors. All rights reserved.
"""Dense nearest-neighbour retrieval evaluation (in-context segmentation).

The tensor functions (:mod:`.labels`, :mod:`.knn`, :mod:`.predict`) need
only torch; MMSegmentation is imported when datasets or metrics are used.
"""
from .backbone import (AUTO_PREFIXES, IMAGENET_MEAN, IMAGENET_STD,
                       build_backbone, extract_patch_features,
                       infer_patch_size, load_backbone_weights,
                       select_backbone_state_dict, training_init)
from .data import (RetrievalSegDataset, build_seg_dataset, collate_retrieval,
                   dataset_meta, format_fraction, parse_fraction,
                   subset_indices)
from .evaluator import (DenseNNSettings, PatchMemory, build_memory,
                        evaluate_retrieval, run_dense_nn_retrieval)
from .knn import (ExactKNNIndex, FaissKNNIndex, build_knn_index,
                  faiss_available, knn_label_transfer, knn_search)
from .labels import patch_label_distributions, sample_memory_patches
from .metrics import IoUAccumulator, mean_std
from .predict import predict_segmentation, upsample_patch_scores
from .visualize import colorize_labels, default_palette, side_by_side

__all__ = [
    'AUTO_PREFIXES', 'IMAGENET_MEAN', 'IMAGENET_STD', 'build_backbone',
    'extract_patch_features', 'infer_patch_size', 'load_backbone_weights',
    'select_backbone_state_dict', 'training_init',
    'RetrievalSegDataset', 'build_seg_dataset', 'collate_retrieval',
    'dataset_meta', 'format_fraction', 'parse_fraction', 'subset_indices',
    'DenseNNSettings', 'PatchMemory', 'build_memory', 'evaluate_retrieval',
    'run_dense_nn_retrieval', 'ExactKNNIndex', 'FaissKNNIndex',
    'build_knn_index', 'faiss_available', 'knn_label_transfer', 'knn_search',
    'patch_label_distributions', 'sample_memory_patches', 'IoUAccumulator',
    'mean_std',
    'predict_segmentation', 'upsample_patch_scores', 'colorize_labels',
    'default_palette', 'side_by_side'
]
