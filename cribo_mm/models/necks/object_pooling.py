# Copyright (c) cribo-mm contributors. All rights reserved.
from typing import Optional, Tuple

import torch
from mmengine.model import BaseModule

from cribo_mm.models.utils.clustering import (TeacherObjects, pool_objects,
                                              teacher_objects)
from cribo_mm.registry import MODELS

ObjectAssignment = TeacherObjects


@MODELS.register_module()
class CrIBoObjectPooling(BaseModule):
    """Objects of an image pair of views: joint clustering, then pooling.

    The teacher's patch tokens of both views of each image are clustered
    together (Sinkhorn-Knopp with a positional cost, hard assignment, see
    :func:`cribo_mm.models.utils.clustering.cluster_two_views`); a cluster
    present in both views is an object. :meth:`pool` averages any tokens
    (teacher or student) over each object's patches in each view.

    Args:
        num_clusters (int): Clusters per image ``K``. Defaults to 64.
        pos_alpha (float): Weight ``lambda_pos`` of the positional cost;
            :class:`CrIBoHook` sets it every epoch. Defaults to 1.0.
        sinkhorn_reg (float): Sinkhorn ``lambda``. Defaults to 20.
        sinkhorn_iters (int): Sinkhorn iterations. Defaults to 5.
        num_iters (int): Clustering iterations. Defaults to 5.
        update_marginals (bool): Update the cluster marginals from the hard
            assignment. Defaults to True.
    """

    def __init__(self,
                 num_clusters: int = 64,
                 pos_alpha: float = 1.0,
                 sinkhorn_reg: float = 20.,
                 sinkhorn_iters: int = 5,
                 num_iters: int = 5,
                 update_marginals: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_clusters = num_clusters
        self.pos_alpha = pos_alpha
        self.sinkhorn_reg = sinkhorn_reg
        self.sinkhorn_iters = sinkhorn_iters
        self.num_iters = num_iters
        self.update_marginals = update_marginals

    @torch.no_grad()
    def cluster(self,
                patch_tokens: torch.Tensor,
                positions: torch.Tensor,
                init_index: Optional[torch.Tensor] = None) -> ObjectAssignment:
        """Cluster the teacher's patch tokens of both views of each image.

        Args:
            patch_tokens (Tensor): View-major patch tokens (2B, n, d).
            positions (Tensor): Patch centres (2, B, 2, n) in original-image
                pixels.
            init_index (Tensor, optional): (B, K) initial centroid indices
                into each image's 2n tokens (random when None).

        Returns:
            ObjectAssignment: teacher object representations of both views
            (C, d), validity mask (B*K,), per-view assignment (2, B, n, K),
            objects per image (B,).
        """
        return teacher_objects(
            patch_tokens,
            positions,
            num_clusters=self.num_clusters,
            pos_alpha=float(self.pos_alpha),
            sinkhorn_reg=self.sinkhorn_reg,
            sinkhorn_iters=self.sinkhorn_iters,
            num_iters=self.num_iters,
            update_marginals=self.update_marginals,
            init_index=init_index,
            has_cls=False)

    def pool(self, patch_tokens: torch.Tensor,
             objects: ObjectAssignment) -> Tuple[torch.Tensor, torch.Tensor]:
        """Mean of ``patch_tokens`` over each valid object, per view.

        Args:
            patch_tokens (Tensor): View-major patch tokens (2B, n, d).
            objects (ObjectAssignment): Output of :meth:`cluster`.

        Returns:
            tuple[Tensor, Tensor]: View-1 and view-2 objects, (C, d) each.
        """
        return pool_objects(
            patch_tokens, objects.assignments, objects.valid, has_cls=False)

    def extra_repr(self) -> str:
        return (f'num_clusters={self.num_clusters}, '
                f'pos_alpha={self.pos_alpha}, num_iters={self.num_iters}')
