# Copyright (c) cribo-mm contributors. All rights reserved.
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.models.utils import CosineEMA
from mmpretrain.structures import DataSample

from cribo_mm.datasets.transforms.geometry import patch_centres
from cribo_mm.models.backbones.reference_init import reference_vit_init
from cribo_mm.models.utils.precision import fp32_region
from cribo_mm.registry import MODELS
from cribo_mm.utils.profiling import profile_part

LOSS_TERMS = ('loss_global', 'loss_object_crossview', 'loss_object_crossimage')


@MODELS.register_module()
class CrIBo(BaseSelfSupervisor):
    """CrIBo: cross-image object-level bootstrapping.

    Implementation of `CrIBo: Self-Supervised Learning via Cross-Image
    Object-Level Bootstrapping <https://arxiv.org/abs/2310.07855>`_.

    Per step, for a batch of B images seen in two views:

    1. the EMA teacher and the student encode both views into tokens
       (2B, 1 + n, C) (view-major: all first views, then all second views);
    2. the teacher's patch tokens of the two views of each image are
       clustered jointly (:class:`CrIBoObjectPooling`); clusters present in
       both views are objects, pooled from teacher and student tokens with
       the same (teacher) assignment;
    3. each teacher object retrieves its nearest neighbour object in the
       memory bank (:class:`CrIBoMemoryBank`), kept only when the retrieval
       is cycle-consistent;
    4. :class:`CrIBoLoss` returns the global DINO term, the cross-view
       object term and the cross-image object term;
    5. the bank receives this step's teacher objects (from all ranks).

    Args:
        backbone (dict): mmpretrain ``VisionTransformer`` config with
            ``out_type='raw'`` (all tokens after the final norm).
        neck (dict): :class:`CrIBoProjectionHead` config.
        head (dict): :class:`CrIBoLoss` config.
        object_pooling (dict): :class:`CrIBoObjectPooling` config.
        memory_bank (dict): :class:`CrIBoMemoryBank` config.
        base_momentum (float): Start of the teacher's EMA momentum in
            mmengine's convention (``1 - `` the DINO momentum): 0.004 is
            DINO's 0.996. Defaults to 0.004.
        end_momentum (float): End of the cosine momentum schedule. Defaults
            to 0 (DINO's 1.0).
        patch_size (int): Patch size of the backbone, used to place the
            tokens in the original image. Defaults to 16.
        object_terms (bool): Compute the two object terms. False gives the
            DINO baseline with the same backbone, head, data and schedule
            (no clustering, no memory bank; both object losses are 0).
            Defaults to True.
        reference_init (bool): Initialise the backbone like the reference
            ViT (truncated normal std 0.02 for linear layers, position and
            CLS embeddings; LayerNorm 1/0) instead of mmpretrain's default.
            Defaults to True.
        data_preprocessor (dict, optional): Defaults to
            ``SelfSupDataPreprocessor``.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 object_pooling: dict,
                 memory_bank: dict,
                 base_momentum: float = 0.004,
                 end_momentum: float = 0.,
                 patch_size: int = 16,
                 object_terms: bool = True,
                 reference_init: bool = True,
                 pretrained: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[List[dict], dict]] = None) -> None:
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            pretrained=pretrained,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.object_pooling = MODELS.build(object_pooling)
        self.memory_bank = MODELS.build(memory_bank)
        self.patch_size = patch_size
        self.object_terms = object_terms
        self.reference_init = reference_init
        self._check_consistency()
        # mmengine's EMA convention: x_ema = (1 - m) * x_ema + m * x.
        self.teacher = CosineEMA(
            nn.Sequential(self.backbone, self.neck),
            momentum=base_momentum,
            end_momentum=end_momentum)

    # ------------------------------------------------------------------
    # set-up
    # ------------------------------------------------------------------
    def _check_consistency(self) -> None:
        """Fail at build time on settings that cannot work together."""
        out_type = getattr(self.backbone, 'out_type', None)
        if out_type != 'raw':
            raise ValueError(
                'CrIBo needs all tokens from the backbone (CLS and patch '
                "tokens): set model.backbone.out_type='raw', got "
                f'{out_type!r}')
        embed_dims = getattr(self.backbone, 'embed_dims', None)
        neck_in = self.neck.mlp[0].in_features if isinstance(
            self.neck.mlp, nn.Sequential) else self.neck.mlp.in_features
        if embed_dims is not None and neck_in != embed_dims:
            raise ValueError(
                f'model.neck.in_channels={neck_in} does not match the '
                f'backbone embedding dimension {embed_dims}')
        if embed_dims is not None and \
                self.memory_bank.embed_dim != embed_dims:
            raise ValueError(
                f'model.memory_bank.embed_dim={self.memory_bank.embed_dim} '
                f'does not match the backbone embedding dimension '
                f'{embed_dims}')
        if self.memory_bank.num_objects != self.object_pooling.num_clusters:
            raise ValueError(
                'model.memory_bank.num_objects='
                f'{self.memory_bank.num_objects} must equal '
                'model.object_pooling.num_clusters='
                f'{self.object_pooling.num_clusters} (objects per image)')
        grid = getattr(self.backbone, 'patch_resolution', None)
        if grid is not None:
            tokens = int(grid[0]) * int(grid[1])
            if self.object_pooling.num_clusters > tokens:
                raise ValueError(
                    'model.object_pooling.num_clusters='
                    f'{self.object_pooling.num_clusters} is larger than '
                    f'the {tokens} patch tokens of a view at the backbone '
                    'img_size')
        out_c = self.neck.last_layer_c.parametrizations.weight.original1
        if hasattr(self.head, 'out_dim_c') and \
                self.head.out_dim_c != out_c.shape[0]:
            raise ValueError(
                f'model.head.out_dim_c={self.head.out_dim_c} does not match '
                f'model.neck.out_channels_objects={out_c.shape[0]}')
        out_g = self.neck.last_layer.parametrizations.weight.original1
        if hasattr(self.head, 'out_dim') and \
                self.head.out_dim != out_g.shape[0]:
            raise ValueError(
                f'model.head.out_dim={self.head.out_dim} does not match '
                f'model.neck.out_channels={out_g.shape[0]}')

    def init_weights(self) -> None:
        super().init_weights()
        if self.reference_init:
            reference_vit_init(self.backbone)
        # The teacher starts as an exact copy of the initialised student.
        self.teacher.module.load_state_dict(
            nn.Sequential(self.backbone, self.neck).state_dict())

    def train(self, mode: bool = True) -> 'CrIBo':
        """Set train mode; the teacher always runs in eval mode, so it has no
        stochastic depth or dropout (the reference teacher has none)."""
        super().train(mode)
        self.teacher.eval()
        return self

    @property
    def teacher_backbone(self) -> nn.Module:
        return self.teacher.module[0]

    @property
    def teacher_neck(self) -> nn.Module:
        return self.teacher.module[1]

    # ------------------------------------------------------------------
    # forward
    # ------------------------------------------------------------------
    def extract_feat(self, inputs: torch.Tensor):
        """Tokens of the teacher backbone, the weights used downstream.

        Args:
            inputs (Tensor): Images (N, 3, H, W).

        Returns:
            tuple[Tensor]: The teacher backbone outputs.
        """
        return self.teacher_backbone(inputs)

    def token_positions(self, data_samples: List[DataSample],
                        image_size) -> torch.Tensor:
        """Centres of all patch tokens in original-image pixels.

        Args:
            data_samples (list[DataSample]): B samples with ``crop_bbox``
                (2, 4) and ``crop_flip`` (2,).
            image_size (tuple[int, int]): (H, W) of the views.

        Returns:
            Tensor: (2, B, 2, n) as [view, image, (x, y), patch].
        """
        try:
            boxes = torch.stack([ds.crop_bbox for ds in data_samples], dim=1)
            flips = torch.stack([ds.crop_flip for ds in data_samples], dim=1)
        except AttributeError as e:
            raise KeyError(
                'CrIBo needs the crop geometry of both views in every data '
                'sample ("crop_bbox", "crop_flip"); pack them with '
                "PackInputs(algorithm_keys=('crop_bbox', 'crop_flip'))"
            ) from e
        return patch_centres(
            boxes.float(), flips.bool(),
            out_size=tuple(image_size), patch_size=self.patch_size)

    def loss(self, inputs: List[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """Update the teacher and compute the three CrIBo loss terms.

        Args:
            inputs (list[Tensor]): Two views, each (B, 3, H, W).
            data_samples (list[DataSample]): Per-image crop geometry.

        Returns:
            dict[str, Tensor]: ``loss_global``, ``loss_object_crossview``,
            ``loss_object_crossimage`` and logged statistics
            (``objects_per_image``, ``cycle_consistent_ratio``,
            ``bank_fill``, ``bank_search_fallbacks``, the teacher entropies
            of :meth:`CrIBoLoss.collapse_stats`).
        """
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError('CrIBo expects exactly two views per image, got '
                             f'{type(inputs).__name__} of length '
                             f'{len(inputs)}')
        with torch.no_grad(), profile_part('ema_update'):
            self.teacher.update_parameters(
                nn.Sequential(self.backbone, self.neck))
        if not self.object_terms:
            return self.forward_global_step(torch.cat(inputs))
        positions = self.token_positions(data_samples, inputs[0].shape[-2:])
        positions = positions.to(inputs[0].device)
        return self.forward_train_step(torch.cat(inputs), positions)

    def forward_global_step(self,
                            images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Losses of the DINO baseline (``object_terms=False``).

        Args:
            images (Tensor): Both views, view-major, (2B, 3, H, W).

        Returns:
            dict[str, Tensor]: The three loss terms, the object ones 0.
        """
        with torch.no_grad():
            with profile_part('teacher_forward'):
                teacher_cls = self.teacher_backbone(images)[0][:, 0]
            with profile_part('head_projections'):
                teacher_global = self.teacher_neck(teacher_cls)
        with profile_part('student_forward'):
            student_cls = self.backbone(images)[0][:, 0]
        with profile_part('head_projections'):
            student_global = self.neck(student_cls)
        no_objects = student_global.new_zeros(0, self.head.out_dim_c)
        losses, stats = self._head_losses(
            student_global=student_global,
            teacher_global=teacher_global,
            student_objects=no_objects,
            teacher_objects=no_objects)
        losses.update(stats)
        return losses

    def forward_train_step(self,
                           images: torch.Tensor,
                           positions: torch.Tensor,
                           init_index: Optional[torch.Tensor] = None,
                           update_bank: bool = True
                           ) -> Dict[str, torch.Tensor]:
        """Losses of one step for fixed teacher weights.

        Args:
            images (Tensor): Both views, view-major, (2B, 3, H, W).
            positions (Tensor): Token centres (2, B, 2, n).
            init_index (Tensor, optional): Initial centroid token indices
                (B, K) for a deterministic clustering.
            update_bank (bool): Insert this step's objects into the bank.

        Returns:
            dict[str, Tensor]: See :meth:`loss`.
        """
        device = images.device
        with torch.no_grad():
            with profile_part('teacher_forward'):
                teacher_tokens = self.teacher_backbone(images)[0]
            with profile_part('head_projections'):
                teacher_global = self.teacher_neck(teacher_tokens[:, 0])
            with profile_part('clustering'):
                objects = self.object_pooling.cluster(
                    teacher_tokens[:, 1:], positions, init_index=init_index)
            teacher_v1 = objects.centroids_v1
            teacher_v2 = objects.centroids_v2
            # Bank matching in float32 also under mixed precision.
            with profile_part('bank'), fp32_region(device):
                retrieval = self.memory_bank.retrieve(teacher_v1, teacher_v2)
            with profile_part('head_projections'):
                teacher_objects = self.teacher_neck.forward_objects(
                    torch.cat([teacher_v1, teacher_v2]))
                teacher_nn_v1 = teacher_nn_v2 = None
                if getattr(self.head, 'crossimage_enabled', True):
                    # Only the entries the loss reads are projected: view 1
                    # of the view-1 neighbours that pass the cycle test (M1),
                    # view 2 of the view-2 neighbours in M2.
                    teacher_nn_v1, teacher_nn_v2 = self._project_neighbours(
                        retrieval)

        with profile_part('student_forward'):
            student_tokens = self.backbone(images)[0]
        with profile_part('pooling'):
            student_v1, student_v2 = self.object_pooling.pool(
                student_tokens[:, 1:], objects)
        with profile_part('head_projections'):
            student_global = self.neck(student_tokens[:, 0])
            student_objects = self.neck.forward_objects(
                torch.cat([student_v1, student_v2]))

        losses, stats = self._head_losses(
            student_global=student_global,
            teacher_global=teacher_global,
            student_objects=student_objects,
            teacher_objects=teacher_objects,
            teacher_nn_v1=teacher_nn_v1,
            teacher_nn_v2=teacher_nn_v2,
            mask_v1=retrieval.mask_v1,
            mask_v2=retrieval.mask_v2)

        if update_bank:
            with torch.no_grad(), profile_part('bank'), fp32_region(device):
                self.memory_bank.update(
                    teacher_v1,
                    teacher_v2,
                    objects.objects_per_image,
                    cls=teacher_tokens[:, 0])

        num_objects = max(int(retrieval.mask_v1.numel()), 1)
        losses['objects_per_image'] = \
            objects.objects_per_image.float().mean().detach()
        losses['cycle_consistent_ratio'] = (
            retrieval.mask_v1.float().sum() +
            retrieval.mask_v2.float().sum()).detach() / (2 * num_objects)
        losses['bank_fill'] = self.memory_bank.fill.detach().to(
            student_global.device)
        # share of this step's bank queries the low-precision search could
        # not prove and searched again in fp32 (0 with the fp32 search)
        losses['bank_search_fallbacks'] = torch.tensor(
            self.memory_bank.last_search_stats.fallback_rate,
            device=student_global.device)
        losses.update(stats)
        return losses

    def _project_neighbours(self, retrieval) -> tuple:
        """Teacher object projections of the neighbours in M1 and M2.

        Args:
            retrieval (RetrievalResult): Output of the bank's ``retrieve``.

        Returns:
            tuple[Tensor, Tensor]: (|M1|, out_dim_c) projections of the view-1
            entries of the view-1 neighbours in M1 and (|M2|, out_dim_c) of
            the view-2 entries of the view-2 neighbours in M2, from one
            forward of the head.
        """
        nn_v1 = retrieval.neighbours_v1[0][retrieval.mask_v1]
        nn_v2 = retrieval.neighbours_v2[1][retrieval.mask_v2]
        projected = self.teacher_neck.forward_objects(
            torch.cat([nn_v1, nn_v2]))
        return projected[:nn_v1.shape[0]], projected[nn_v1.shape[0]:]

    def _head_losses(self, **head_inputs) -> tuple:
        """The loss terms of one step and this step's collapse statistics.

        A head with ``collapse_stats`` (``CrIBoLoss``) returns the teacher
        statistics of this step's loss from the same pass (before its
        centres move); a non-finite loss stops the step here.

        Args:
            **head_inputs: Keyword inputs of the head (``CrIBoLoss``), among
                them ``teacher_global`` (2B, out_dim) and
                ``teacher_objects`` (2C, out_dim_c).

        Returns:
            tuple[dict, dict]: The head's losses and the statistics of
            :meth:`CrIBoLoss.collapse_stats` (empty for other heads).
        """
        if hasattr(self.head, 'collapse_stats'):
            head_inputs['collapse_stats'] = True
        with profile_part('loss'):
            losses = self.head(**head_inputs)
        self._check_finite(losses)
        stats = {k: losses.pop(k) for k in list(losses) if k not in LOSS_TERMS}
        return losses, stats

    def _check_finite(self, losses: Dict[str, torch.Tensor]) -> None:
        terms = torch.stack([losses[k].detach().float() for k in LOSS_TERMS])
        finite = torch.isfinite(terms)
        if bool(finite.all()):
            return
        bad = [k for k, ok in zip(LOSS_TERMS, finite.tolist()) if not ok]
        iteration = int(self.teacher.steps) - 1
        raise FloatingPointError(
            f'non-finite CrIBo loss at iteration {iteration}: '
            + ', '.join(f'{k}={float(losses[k].detach()):.4g}' for k in bad)
            + '. Training stopped before the optimizer step; the last '
            'saved checkpoint is intact. Try a lower lr, gradient clipping '
            '(optim_wrapper.clip_grad) or disabling --amp.')
