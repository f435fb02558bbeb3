# mmpose top-down heatmap config for Amur tigers: ATRW's 15 keypoints (reid_ext's `atrw15`),
# ResNet-50 + deconvolution heatmap head (SimpleBaseline), 256x256 input, 64x64 heatmaps.
# mmpose ships ATRW's dataset metadata (configs/_base_/datasets/atrw.py) but no model config;
# this one follows its COCO ResNet-50 heatmap recipe. Train it with mmpose's tools/train.py on
# ATRW (data_root below), or load a checkpoint for the `mmpose` keypoint source:
#   python tools/extract_keypoints.py --source mmpose \
#       --source-option config=configs/pose/td-hm_res50_atrw-256x256.py --weights CKPT ...
_base_ = ['mmpose::_base_/default_runtime.py']

train_cfg = dict(max_epochs=210, val_interval=10)
optim_wrapper = dict(optimizer=dict(type='Adam', lr=5e-4))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=500, start_factor=0.001, by_epoch=False),
    dict(type='MultiStepLR', begin=0, end=210, milestones=[170, 200], gamma=0.1,
         by_epoch=True),
]
auto_scale_lr = dict(base_batch_size=512)
default_hooks = dict(checkpoint=dict(save_best='PCK', rule='greater'))

codec = dict(type='MSRAHeatmap', input_size=(256, 256), heatmap_size=(64, 64), sigma=2)

model = dict(
    type='TopdownPoseEstimator',
    data_preprocessor=dict(
        type='PoseDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    # no ImageNet initialisation here (none can be downloaded); set init_cfg to
    # dict(type='Pretrained', checkpoint='torchvision://resnet50') where it can
    backbone=dict(type='ResNet', depth=50, init_cfg=None),
    head=dict(
        type='HeatmapHead',
        in_channels=2048,
        out_channels=15,
        loss=dict(type='KeypointMSELoss', use_target_weight=True),
        decoder=codec),
    test_cfg=dict(flip_test=True, flip_mode='heatmap', shift_heatmap=True))

dataset_type = 'ATRWDataset'
data_mode = 'topdown'
data_root = 'data/atrw/'
metainfo = dict(from_file='configs/_base_/datasets/atrw.py')

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomBBoxTransform', rotate_factor=60, scale_factor=(0.75, 1.25)),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='PackPoseInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        metainfo=metainfo,
        ann_file='annotations/keypoint_train.json',
        data_prefix=dict(img='images/train/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        metainfo=metainfo,
        ann_file='annotations/keypoint_val.json',
        data_prefix=dict(img='images/val/'),
        test_mode=True,
        pipeline=val_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='PCKAccuracy', thr=0.2)
test_evaluator = val_evaluator
