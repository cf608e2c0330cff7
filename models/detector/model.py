"""Tiny anchor-free (CenterNet-style) plate detector network and its ONNX export."""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from nn_blocks import DWSep, cbr, count_macs  # noqa: E402
from onnx_form import GEOMETRY_FEATURES, finalize_onnx  # noqa: F401,E402  (re-exported for export.py)


class PlateDetector(nn.Module):
    def __init__(self, w=(16, 32, 56, 80, 112), fpn=40, head=32):
        super().__init__()
        c1, c4, c8, c16, c32 = w
        self.stem = cbr(1, c1, 3, 2)                                   # /2
        self.s4 = nn.Sequential(DWSep(c1, c4, 2), DWSep(c4, c4))       # /4
        self.s8 = nn.Sequential(DWSep(c4, c8, 2), DWSep(c8, c8))       # /8
        self.s16 = nn.Sequential(DWSep(c8, c16, 2), DWSep(c16, c16), DWSep(c16, c16, dil=2))  # /16
        self.s32 = nn.Sequential(DWSep(c16, c32, 2), DWSep(c32, c32, k=5), DWSep(c32, c32, dil=2))  # /32
        self.l32 = cbr(c32, fpn, 1)
        self.l16 = cbr(c16, fpn, 1)
        self.l8 = cbr(c8, fpn, 1)
        self.l4 = cbr(c4, head, 1)
        self.m16 = DWSep(fpn, fpn)
        self.m8 = DWSep(fpn, fpn)
        self.r8 = cbr(fpn, head, 1)
        self.m4 = DWSep(head, head)
        self.hm = nn.Sequential(cbr(head, head, 3, groups=head), nn.Conv2d(head, 1, 1))
        self.geo = nn.Sequential(cbr(head, head, 3, groups=head), cbr(head, head, 1), nn.Conv2d(head, 8, 1))
        nn.init.constant_(self.hm[-1].bias, -math.log((1 - 0.01) / 0.01))
        nn.init.normal_(self.geo[-1].weight, std=0.01)
        nn.init.zeros_(self.geo[-1].bias)
        with torch.no_grad():  # start geometry at a plausible plate-sized quad
            self.geo[-1].bias.copy_(torch.tensor([-3., -1., 3., -1., 3., 1., -3., 1.]))

    @staticmethod
    def up(x):
        return F.interpolate(x, scale_factor=2.0, mode="nearest")

    def forward(self, x, logits=False):
        x = self.stem(x)
        f4 = self.s4(x)
        f8 = self.s8(f4)
        f16 = self.s16(f8)
        f32 = self.s32(f16)
        p = self.l32(f32)
        p = self.m16(self.l16(f16) + self.up(p))
        p = self.m8(self.l8(f8) + self.up(p))
        p = self.m4(self.l4(f4) + self.up(self.r8(p)))
        h = self.hm(p)
        g = self.geo(p)
        return (h if logits else torch.sigmoid(h)), g


def count_flops(model, H, W):
    """Multiply-accumulates of all convolutions for a [1,1,H,W] input (returns MACs)."""
    return count_macs(model, (1, 1, H, W))


class ExportWrapper(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, image):
        return self.m(image)


def export_onnx(model, path, H=384, W=640):
    model = model.eval()
    dummy = torch.rand(1, 1, H, W)
    wrapper = ExportWrapper(model).eval()
    torch.onnx.export(wrapper, (dummy,), path, input_names=["image"],
                      output_names=["heatmap", "geometry"], opset_version=13, dynamo=False,
                      do_constant_folding=True,
                      dynamic_axes={"image": {2: "H", 3: "W"}, "heatmap": {2: "h", 3: "w"},
                                    "geometry": {2: "h", 3: "w"}})
    import onnx
    onnx.save(finalize_onnx(onnx.load(path)), path)
    model.eval()
