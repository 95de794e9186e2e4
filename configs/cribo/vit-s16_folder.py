# CrIBo ViT-S/16 on any folder of images (scanned recursively, labels
# unused): the COCO setting of cribo_vit-small-p16_8xb32-amp-coslr-300e_coco.py
# (300 epochs, 8 GPUs x 32 images, K = 64, lambda_pos = 2, fp16) with the
# COCO data set replaced by CrIBoImageFolder. Point it at your images with
#   python tools/train.py configs/cribo/vit-s16_folder.py \
#       --cfg-options train_dataloader.dataset.data_root=/my/images
# The bank holds 25 000 images (as for COCO's 118 287): for a much smaller
# folder lower model.memory_bank.num_images to about a fifth of it.
_base_ = ['./cribo_vit-small-p16_8xb32-amp-coslr-300e_coco.py']

data_root = 'data/images/'
train_dataloader = dict(
    dataset=dict(
        # replace the whole COCO dict: its ann_file/missing keys are not
        # arguments of CrIBoImageFolder
        _delete_=True,
        type='CrIBoImageFolder',
        data_root=data_root,
        data_prefix='',
        recursive=True,
        pipeline={{_base_.train_pipeline}}))
