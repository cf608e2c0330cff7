"""Export a detector checkpoint to models/plate_detector.onnx and verify onnxruntime == torch at several sizes."""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import PlateDetector, count_flops, export_onnx  # noqa: E402
from onnx_form import check_geometry_head, finalize_file  # noqa: E402

ALLOWED = {"Conv", "Relu", "Add", "Resize", "Sigmoid", "Constant", "Identity", "MaxPool"}


def export_and_verify(model, path):
    model = model.eval()
    tmp = path + ".tmp"
    export_onnx(model, tmp)
    import onnx
    import onnxruntime as ort
    m = onnx.load(tmp)
    onnx.checker.check_model(m)
    ops = {n.op_type for n in m.graph.node}
    assert ops <= ALLOWED, ops
    assert not any(n.op_type == "BatchNormalization" for n in m.graph.node)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(tmp, so, providers=["CPUExecutionProvider"])
    for H, W in [(384, 640), (448, 800), (544, 960), (384, 384), (64, 96)]:
        x = np.random.rand(1, 1, H, W).astype(np.float32)
        hm, geo = sess.run(["heatmap", "geometry"], {"image": x})
        with torch.no_grad():
            th, tg = model(torch.from_numpy(x))
        assert hm.shape == (1, 1, H // 4, W // 4) and geo.shape == (1, 8, H // 4, W // 4)
        d1 = np.abs(hm - th.numpy()).max()
        d2 = np.abs(geo - tg.numpy()).max()
        assert d1 < 1e-4 and d2 < 1e-3, (H, W, d1, d2)
    check_geometry_head(tmp)
    os.replace(tmp, path)
    print(f"exported {path}: {os.path.getsize(path)} bytes, ops {sorted(ops)}, ORT==torch verified", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ckpt", default="/tmp/platewatch_detector/best.pt")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plate_detector.onnx"))
    ap.add_argument("--finalize", metavar="ONNX",
                    help="only bring an exported file to the runtime form (model.finalize_onnx) in place, "
                         "checking that its outputs do not change")
    args = ap.parse_args()
    if args.finalize:
        finalize_file(args.finalize)
        return
    torch.set_num_threads(1)
    m = PlateDetector()
    m.load_state_dict(torch.load(args.ckpt))
    print("params", sum(p.numel() for p in m.parameters()))
    for H, W in [(384, 640), (448, 800), (544, 960), (384, 384)]:
        print(f"{W}x{H}: {count_flops(m, H, W) / 1e6:.1f} MMAC = {2 * count_flops(m, H, W) / 1e9:.3f} GFLOPs")
    export_and_verify(m, os.path.normpath(args.out))


if __name__ == "__main__":
    main()
