# MobileMamba-B1 + Mask R-CNN (EfficientViTFPN), 12 epochs: the released
# recipe (MM:downstream/det/configs/mask_rcnn/
# mask-rcnn_mobilemamba_b1_fpn_1x_coco.py and MM-LOG:maskrcnn, docs/recipes.md
# #det-mobilemamba-backbone to #det-mobilemamba-maskrcnn). Published: box AP
# 40.6, mask AP 37.4.
_base_ = [
    './_base_/models/mask_rcnn_fpn.py', './_base_/datasets/coco_instance.py',
    './_base_/default_runtime_det.py',
    './_base_/schedules/mobilemamba_adamw.py'
]

model = dict(
    backbone=dict(
        type='MobileMamba',
        arch='b1',
        out_indices=(1, 2, 3),  # strides 16, 32, 64
        frozen_stages=-1,
        norm_eval=True,
        drop_path_rate=0.03,
        # 300-epoch B1 ImageNet weights without KD (256 px)
        init_cfg=dict(
            type='Pretrained', checkpoint='checkpoints/mobilemamba_b1.pth')),
    # two transposed-conv levels give strides 4 and 8
    # (docs/recipes.md#efficientvit-fpn)
    neck=dict(
        _delete_=True,
        type='EfficientViTFPN',
        in_channels=[200, 376, 448],
        out_channels=256,
        start_level=0,
        num_outs=5,
        num_extra_trans_convs=2))

# 4 images/GPU x 4 GPUs = 16 (MM-LOG:maskrcnn)
train_dataloader = dict(batch_size=4, num_workers=4)
auto_scale_lr = dict(enable=False, base_batch_size=16)

optim_wrapper = dict(optimizer=dict(lr=2e-4))

# warm-up from 1e-5 x lr over 500 iterations, constant to epoch 6, then
# cosine by epoch to 0 at epoch 12 (not the step schedule of the paper text)
max_epochs = 12
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-5, by_epoch=False, begin=0,
         end=500),
    dict(
        type='CosineAnnealingLR',
        begin=max_epochs // 2,
        T_max=max_epochs // 2,
        end=max_epochs,
        by_epoch=True,
        eta_min=0)
]
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
