# MobileMamba-S6 on ImageNet-1k at 224 px, 1000 epochs with knowledge
# distillation (the "†" models): MM:configs/mobilemamba/mobilemamba_s6s.py,
# docs/recipes.md#imagenet-mobilemamba. Published: top-1 80.7 (paper Tab. 3;
# its log is missing from the release).
_base_ = ['./mobilemamba_s6_in1k.py', './_base_/mobilemamba_kd1000e.py']

model = _base_.kd_model
param_scheduler = _base_.kd_param_scheduler
max_epochs = _base_.kd_max_epochs
# evaluation as in the 300-epoch recipe: every 5 epochs, every epoch from 200
train_cfg = dict(max_epochs=max_epochs)
