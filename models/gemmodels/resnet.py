"""ResNet for small images, He et al. 2016 ("Deep Residual Learning"), section 4.2.

A 3x3 convolution with 16 filters, then three stages of n basic blocks each with
16, 32 and 64 filters (the first block of stages 2 and 3 halves the resolution with
stride 2), global average pooling and a linear classifier: 6n + 2 layers. Every
convolution is followed by BatchNorm. Shortcuts are identities (the paper's option A):
where the shape changes, the input is subsampled with stride 2 and zero-padded in its
channels, so the network has no extra parameters. The activation given by slug goes
everywhere the paper has a ReLU (after the stem and inside and after every block).

Input: float32 [B, in_channels, H, W], normalised as the data set requires.
Output: logits [B, num_classes].

TorchScript methods: `forward(x) -> logits` and the exported
`activation_statistics(x) -> (logits, stats)` (docs/TELEMETRY.md): the same network
through a second code path (`forward_with_statistics` of each block) that records, per
activation site ("stem.act", "stage1.block0.act1", ..., "stage3.block2.act2"), the
statistics of gemmodels/telemetry.py. The activation modules and `forward` are the
same in both paths.
"""
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from gemmodels.activations import make_activation
from gemmodels.telemetry import Statistics, input_statistics, site_statistics

PRESETS: Dict[str, int] = {"resnet20": 3, "resnet56": 9}  # name -> n (blocks per stage)
WIDTHS = (16, 32, 64)


class BasicBlock(nn.Module):
    """conv-BN-act-conv-BN, plus the (option A) identity shortcut, then act."""

    def __init__(self, in_planes: int, planes: int, stride: int, activation: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = make_activation(activation)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = make_activation(activation)
        self.stride = stride
        self.pad_channels = planes - in_planes
        self.site = "block"  # "stage<S>.block<B>", set by ResNet: prefixes the site names

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1 and self.pad_channels == 0:
            return x
        x = x[:, :, ::self.stride, ::self.stride]
        half = self.pad_channels // 2
        return F.pad(x, [0, 0, 0, 0, half, self.pad_channels - half])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))

    def forward_with_statistics(self, features: torch.Tensor, record: Statistics) -> torch.Tensor:
        """`forward`, recording the statistics of act1 and act2 in `record`.

        Its variable names occur in no other method: TorchScript prints a class's methods
        with one name table, so reusing `x` or `out` here would rename them in the printed
        `forward` (tests/python/test_activation_statistics.py checks that it is unchanged)."""
        pre_act = self.bn1(self.conv1(features))
        site_input = input_statistics(pre_act)
        post_act = self.act1(pre_act)
        record[self.site + ".act1"] = site_statistics(site_input, post_act, 1)
        pre_act = self.bn2(self.conv2(post_act)) + self.shortcut(features)
        site_input = input_statistics(pre_act)
        post_act = self.act2(pre_act)
        record[self.site + ".act2"] = site_statistics(site_input, post_act, 1)
        return post_act


class ResNet(nn.Module):
    """The CIFAR-style ResNet of 6n + 2 layers with the given activation."""

    def __init__(self, blocks_per_stage: int, activation: str, in_channels: int = 3,
                 num_classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, WIDTHS[0], 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(WIDTHS[0])
        self.act = make_activation(activation)
        stages = []
        in_planes = WIDTHS[0]
        for index, planes in enumerate(WIDTHS):
            for block in range(blocks_per_stage):
                stride = 2 if index > 0 and block == 0 else 1
                stages.append(BasicBlock(in_planes, planes, stride, activation))
                stages[-1].site = f"stage{index + 1}.block{block}"
                in_planes = planes
        self.blocks = nn.Sequential(*stages)
        self.fc = nn.Linear(WIDTHS[-1], num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """He (fan-out) initialisation for convolutions, as in the paper."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.conv(x)))
        x = self.blocks(x)
        x = x.mean(dim=(2, 3))
        return self.fc(x)

    @torch.jit.export
    def activation_statistics(self, images: torch.Tensor) -> Tuple[torch.Tensor, Statistics]:
        """(logits, stats): `forward` plus the statistics of every activation site, in
        network order, over the whole batch (docs/TELEMETRY.md). Variable names as in
        BasicBlock.forward_with_statistics: none that `forward` uses."""
        record: Statistics = {}
        pre_act = self.bn(self.conv(images))
        site_input = input_statistics(pre_act)
        features = self.act(pre_act)
        record["stem.act"] = site_statistics(site_input, features, 1)
        for stage_block in self.blocks:
            features = stage_block.forward_with_statistics(features, record)
        pooled = features.mean(dim=(2, 3))
        return self.fc(pooled), record


def resnet(preset: str, activation: str, in_channels: int = 3, num_classes: int = 10) -> ResNet:
    """A preset ("resnet20": n = 3, "resnet56": n = 9) with the activation `activation`."""
    if preset not in PRESETS:
        raise ValueError(f"unknown ResNet preset {preset!r}; choose one of {sorted(PRESETS)}")
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
    return ResNet(PRESETS[preset], activation, in_channels, num_classes)


def architecture(preset: str, in_channels: int, num_classes: int) -> dict:
    """The hyperparameters that model.json records for a ResNet."""
    n = PRESETS[preset]
    return {"name": preset, "family": "resnet-cifar", "depth": 6 * n + 2,
            "blocks_per_stage": n, "widths": list(WIDTHS), "shortcut": "identity-zero-pad",
            "in_channels": in_channels, "num_classes": num_classes}
