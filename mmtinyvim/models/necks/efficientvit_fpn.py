"""FPN with extra finer levels made by transposed convolutions.

MobileMamba's features sit at strides 16/32/64 only. Its Mask R-CNN and
RetinaNet recipes (docs/recipes.md#efficientvit-fpn) keep a standard
top-down FPN over those maps and grow finer levels (stride 8, 4, ...) out of
the finest merged lateral with 2x2 stride-2 transposed convs, each followed
by its own 3x3 output conv.

Output order is finest to coarsest::

    [transposed-conv levels] + [one level per used input] + [extra coarse levels]

State-dict names follow the released detection checkpoints: ``lateral_convs``,
``fpn_convs`` (input levels, then extra coarse levels), ``extra_trans_convs``
and ``extra_fpn_convs``. ``extra_fpn_convs[0]`` smooths the *finest* level,
which ``extra_trans_convs[-1]`` produces.
"""
from typing import List, Sequence, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor

from mmtinyvim.registry import MODELS

EXTRA_CONV_SOURCES = ('on_input', 'on_lateral', 'on_output')


@MODELS.register_module()
class EfficientViTFPN(BaseModule):
    """Feature pyramid whose finest levels come from transposed convs.

    Args:
        in_channels (list[int]): channels of each backbone input level.
        out_channels (int): channels of every output level.
        num_outs (int): total number of outputs, transposed-conv levels
            included.
        start_level (int): first input level used. Defaults to 0.
        end_level (int): last input level used, exclusive; -1 means all.
            With an explicit end level no extra coarse level is allowed.
        add_extra_convs (bool | str): how extra coarse levels are made.
            False: max-pool (kernel 1, stride 2) of the coarsest output.
            'on_input' / 'on_lateral' / 'on_output': a stride-2 3x3 conv on
            the last used backbone map / its lateral / the coarsest output,
            then stride-2 3x3 convs on the previous extra level.
            True means 'on_input'.
        relu_before_extra_convs (bool): ReLU before the second and later
            extra coarse convs. Defaults to False.
        no_norm_on_lateral (bool): no norm on lateral and transposed convs.
        num_extra_trans_convs (int): number of finer levels added by
            transposed convs, at least 1 (use mmdet's ``FPN`` otherwise).
        conv_cfg, norm_cfg, act_cfg (dict, optional): for every ConvModule
            except the transposed convs' own conv layer.
        upsample_cfg (dict): ``F.interpolate`` arguments of the top-down path;
            without ``scale_factor`` the size of the finer map is used.
        init_cfg (dict | list[dict]): Xavier-uniform on every ``Conv2d``, as
            in the released recipe; the transposed convs keep ConvModule's
            Kaiming initialisation.
    """

    def __init__(self,
                 in_channels: List[int],
                 out_channels: int,
                 num_outs: int,
                 start_level: int = 0,
                 end_level: int = -1,
                 add_extra_convs: Union[bool, str] = False,
                 relu_before_extra_convs: bool = False,
                 no_norm_on_lateral: bool = False,
                 num_extra_trans_convs: int = 1,
                 conv_cfg=None,
                 norm_cfg=None,
                 act_cfg=None,
                 upsample_cfg=dict(mode='nearest'),
                 init_cfg=dict(
                     type='Xavier', layer='Conv2d', distribution='uniform')):
        super().__init__(init_cfg=init_cfg)
        if not isinstance(in_channels, Sequence) or not in_channels:
            raise TypeError('in_channels must be a non-empty list of channel '
                            f'counts, got {in_channels!r}')
        num_ins = len(in_channels)
        if not 0 <= start_level < num_ins:
            raise ValueError(f'start_level={start_level} is not an index of '
                             f'the {num_ins} input levels')
        if end_level == -1:
            end_level = num_ins
        elif not start_level < end_level <= num_ins:
            raise ValueError(f'end_level={end_level} must lie in '
                             f'({start_level}, {num_ins}] or be -1')
        if num_extra_trans_convs < 1:
            raise ValueError(
                'num_extra_trans_convs must be >= 1 (got '
                f'{num_extra_trans_convs}); for a pyramid without finer '
                "levels use mmdet's FPN")
        if add_extra_convs is True:
            add_extra_convs = 'on_input'
        if add_extra_convs and add_extra_convs not in EXTRA_CONV_SOURCES:
            raise ValueError(f'add_extra_convs={add_extra_convs!r}; valid: '
                             f'False, True, {EXTRA_CONV_SOURCES}')
        used_levels = end_level - start_level
        num_coarse = num_outs - num_extra_trans_convs - used_levels
        if num_coarse < 0 or (num_coarse > 0 and end_level != num_ins):
            raise ValueError(
                f'num_outs={num_outs} does not fit {used_levels} input '
                f'levels + {num_extra_trans_convs} transposed-conv levels '
                + ('(extra coarse levels need end_level=-1)'
                   if num_coarse > 0 else ''))

        self.in_channels = list(in_channels)
        self.out_channels = out_channels
        self.num_outs = num_outs
        self.start_level = start_level
        self.end_level = end_level
        self.add_extra_convs = add_extra_convs
        self.relu_before_extra_convs = relu_before_extra_convs
        self.num_extra_trans_convs = num_extra_trans_convs
        self.num_coarse = num_coarse
        self.upsample_cfg = dict(upsample_cfg)
        lateral_norm = None if no_norm_on_lateral else norm_cfg

        def conv3x3(in_ch, stride=1):
            return ConvModule(in_ch, out_channels, 3, stride=stride,
                              padding=1, conv_cfg=conv_cfg, norm_cfg=norm_cfg,
                              act_cfg=act_cfg, inplace=False)

        self.lateral_convs = nn.ModuleList(
            ConvModule(in_channels[i], out_channels, 1, conv_cfg=conv_cfg,
                       norm_cfg=lateral_norm, act_cfg=act_cfg, inplace=False)
            for i in range(start_level, end_level))
        self.fpn_convs = nn.ModuleList(
            conv3x3(out_channels) for _ in range(used_levels))
        if add_extra_convs:
            for i in range(num_coarse):
                first_on_input = i == 0 and add_extra_convs == 'on_input'
                source_channels = (in_channels[end_level - 1]
                                   if first_on_input else out_channels)
                self.fpn_convs.append(conv3x3(source_channels, stride=2))
        self.extra_trans_convs = nn.ModuleList(
            ConvModule(out_channels, out_channels, 2, stride=2, padding=0,
                       conv_cfg=dict(type='deconv'), norm_cfg=lateral_norm,
                       act_cfg=act_cfg, inplace=False)
            for _ in range(num_extra_trans_convs))
        self.extra_fpn_convs = nn.ModuleList(
            conv3x3(out_channels) for _ in range(num_extra_trans_convs))

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'{type(self).__name__} was built for '
                             f'{len(self.in_channels)} input levels, got '
                             f'{len(inputs)}')
        laterals = [conv(inputs[self.start_level + i])
                    for i, conv in enumerate(self.lateral_convs)]
        for i in range(len(laterals) - 1, 0, -1):
            if 'scale_factor' in self.upsample_cfg:
                coarse = F.interpolate(laterals[i], **self.upsample_cfg)
            else:
                coarse = F.interpolate(laterals[i],
                                       size=laterals[i - 1].shape[2:],
                                       **self.upsample_cfg)
            laterals[i - 1] = laterals[i - 1] + coarse

        finer = []
        level = laterals[0]
        for trans_conv in self.extra_trans_convs:
            level = trans_conv(level)
            finer.insert(0, level)
        finer = [conv(x) for conv, x in zip(self.extra_fpn_convs, finer)]

        outs = [self.fpn_convs[i](x) for i, x in enumerate(laterals)]
        if self.num_coarse and not self.add_extra_convs:
            for _ in range(self.num_coarse):
                outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        elif self.num_coarse:
            source = {'on_input': inputs[self.end_level - 1],
                      'on_lateral': laterals[-1],
                      'on_output': outs[-1]}[self.add_extra_convs]
            used = len(laterals)
            outs.append(self.fpn_convs[used](source))
            for conv in self.fpn_convs[used + 1:]:
                x = F.relu(outs[-1]) if self.relu_before_extra_convs \
                    else outs[-1]
                outs.append(conv(x))
        return tuple(finer + outs)
