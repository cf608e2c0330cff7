"""Export a refiner checkpoint to ONNX (python3 models/refiner/export.py --ckpt ~/.cache/platewatch/refiner/best.pt),
checking that onnxruntime gives torch's outputs."""
import argparse
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from net import ONNX_OUT, PlateRefiner, count_macs, export_and_verify  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ckpt", default=os.path.expanduser("~/.cache/platewatch/refiner/best.pt"))
    ap.add_argument("--out", default=ONNX_OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    m = PlateRefiner()
    m.load_state_dict(torch.load(args.ckpt))
    print(f"params {sum(p.numel() for p in m.parameters())}, {count_macs(m) / 1e6:.2f} MMAC")
    export_and_verify(m, os.path.normpath(args.out))


if __name__ == "__main__":
    main()
