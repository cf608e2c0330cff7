"""Plate box refiner: a small CNN that regresses a plate's four corners inside a loose crop around a detection."""
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import nn_blocks  # noqa: E402
from nn_blocks import DWSep, cbr  # noqa: E402
from samples import IN_H, IN_W, MARGIN_X, MARGIN_Y  # noqa: E402

ONNX_OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plate_refiner.onnx"))


def default_corners():
    """Where the detection's own corners fall in the input, normalised: the refiner's starting guess."""
    x0, x1 = MARGIN_X / (1 + 2 * MARGIN_X), (1 + MARGIN_X) / (1 + 2 * MARGIN_X)
    y0, y1 = MARGIN_Y / (1 + 2 * MARGIN_Y), (1 + MARGIN_Y) / (1 + 2 * MARGIN_Y)
    return [x0, y0, x1, y0, x1, y1, x0, y1]


class PlateRefiner(nn.Module):
    """[N,1,48,128] -> corners [N,8] (TL,TR,BR,BL as x/IN_W, y/IN_H) and plate logit [N,1]."""

    def __init__(self, w=(16, 32, 64, 96), hidden=128):
        super().__init__()
        c1, c2, c3, c4 = w
        self.features = nn.Sequential(
            cbr(1, c1, 3, 2),                       # 24x64
            DWSep(c1, c2, 2), DWSep(c2, c2),        # 12x32
            DWSep(c2, c3, 2), DWSep(c3, c3),        # 6x16
            DWSep(c3, c4, 2), DWSep(c4, c4),        # 3x8
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c4 * 3 * 8, hidden), nn.ReLU(inplace=True))
        self.corners = nn.Linear(hidden, 8)
        self.plate = nn.Linear(hidden, 1)
        nn.init.normal_(self.corners.weight, std=1e-3)
        with torch.no_grad():
            self.corners.bias.copy_(torch.tensor(default_corners()))

    def forward(self, x):
        h = self.fc(self.features(x))
        return self.corners(h), self.plate(h)


def count_macs(model):
    return nn_blocks.count_macs(model, (1, 1, IN_H, IN_W))


class ExportWrapper(nn.Module):
    """ONNX form: input `crop` [N,1,48,128]; outputs `corners` [N,8] and `plate` [N,1] (sigmoid applied)."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, crop):
        c, p = self.m(crop)
        return c, torch.sigmoid(p)


def export_onnx(model, path):
    model = model.eval()
    torch.onnx.export(ExportWrapper(model).eval(), (torch.rand(1, 1, IN_H, IN_W),), path, input_names=["crop"],
                      output_names=["corners", "plate"], opset_version=13, dynamo=False, do_constant_folding=True,
                      dynamic_axes={"crop": {0: "n"}, "corners": {0: "n"}, "plate": {0: "n"}})


def export_and_verify(model, path):
    import onnx
    import onnxruntime as ort
    model = model.eval()
    tmp = path + ".tmp"
    export_onnx(model, tmp)
    m = onnx.load(tmp)
    onnx.checker.check_model(m)
    ops = {n.op_type for n in m.graph.node}
    assert ops <= {"Conv", "Relu", "Add", "Flatten", "Gemm", "Sigmoid", "Reshape", "Constant", "Identity"}, ops
    sess = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
    x = np.random.rand(5, 1, 48, 128).astype(np.float32)
    c, p = sess.run(["corners", "plate"], {"crop": x})
    with torch.no_grad():
        tc, tp = model(torch.from_numpy(x))
    assert np.abs(c - tc.numpy()).max() < 1e-4 and np.abs(p - torch.sigmoid(tp).numpy()).max() < 1e-4
    os.replace(tmp, path)
    print(f"exported {path}: {os.path.getsize(path)} bytes, ops {sorted(ops)}, ORT == torch", flush=True)
