"""Run H, device call 6: does the default training hook still emit torch's
AccumulateGrad stream-mismatch warning, and where (recording or replay)?
A full mmengine AMP train step of MobileMamba-T2, 5 steps, warnings
recorded per step."""
import warnings
from types import SimpleNamespace

import torch
from mmengine.optim import AmpOptimWrapper
from mmpretrain.structures import DataSample

from mmtinyvim.engine import CUDAGraphTrainingHook
from mmtinyvim.models.zoo import build_classifier

model, res = build_classifier('mobilemamba-t2')
model = model.cuda().train()
CUDAGraphTrainingHook(required=False).before_train(SimpleNamespace(
    model=model, logger=SimpleNamespace(info=print)))
data = dict(inputs=torch.randint(0, 256, (64, 3, res, res), dtype=torch.uint8,
                                 device='cuda'),
            data_samples=[DataSample().set_gt_label(i) for i in range(64)])
wrapper = AmpOptimWrapper(optimizer=torch.optim.AdamW(model.parameters()),
                          loss_scale='dynamic')
for step in range(5):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        loss = model.train_step(data, wrapper)['loss'].item()
    print(step, round(loss, 4), [str(w.message)[:60] for w in caught])
