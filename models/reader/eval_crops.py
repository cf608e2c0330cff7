"""Evaluate the exported reader ONNX (onnxruntime) on the ocr-us-crops validation set.

Each crop image is taken as the plate quad (its four corners), expanded 6%/10% as CONTRACT.md says
(outside-the-image pixels: edge replicate), and warped to the "line" layout; the second-opinion networks (when
the file has them) read it too, and when one disagrees or a character is uncertain every network reads the line
again at four other margins and the reads vote, as core/src/reader.rs does. When width/height < 1.6 the "stacked"
layout is tried too and the more confident result (mean char confidence) is kept.
Prints exact plate rate, character accuracy (1 - edit distance / label length, floored at 0,
averaged) and state rate.

    python3 models/reader/eval_crops.py [--onnx models/plate_reader.onnx] [--show-errors 30]
"""
import argparse
import csv
import os
import sys

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import STATES, ctc_greedy, norm_text, read_line, to_gray, warp_stacked  # noqa: E402


def edit_distance(a, b):
    d = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(b) + 1):
            cur = d[j]
            d[j] = min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] != b[j - 1]))
            prev = cur
    return d[len(b)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", default=os.path.join(HERE, "..", "plate_reader.onnx"))
    ap.add_argument("--data", default="/work/shared/datasets/ocr-us-crops")
    ap.add_argument("--show-errors", type=int, default=0)
    args = ap.parse_args()
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(args.onnx, so, providers=["CPUExecutionProvider"])
    rows = list(csv.DictReader(open(os.path.join(args.data, "labels.csv"))))
    n_exact, char_acc, n_state, n_stacked_tried, n_stacked_used, n_exact_o0 = 0, 0.0, 0, 0, 0, 0
    errors = []
    for r in rows:
        img = to_gray(cv2.imread(os.path.join(args.data, r["image"])))
        h, w = img.shape
        quad = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        run = lambda x: sess.run(None, {"image": x})  # noqa: E731
        text, conf, st_probs = read_line(run, img, quad)
        k = 0
        if w / h < 1.6:
            n_stacked_tried += 1
            chars, state = run(warp_stacked(img, quad)[None, None].astype(np.float32) / 255.0)[:2]
            st_text, st_conf = ctc_greedy(chars[0])
            if st_text and st_conf > conf:
                text, conf, st_probs, k = st_text, st_conf, state[0], 1
        n_stacked_used += k == 1
        pred = text
        label = norm_text(r["text"])
        st = STATES[int(np.argmax(st_probs)) - 1] if np.argmax(st_probs) > 0 else "--"
        n_exact += pred == label
        n_exact_o0 += pred.replace("O", "0") == label.replace("O", "0")
        char_acc += max(0.0, 1.0 - edit_distance(pred, label) / max(1, len(label)))
        n_state += st == r["state"].upper()
        if pred != label:
            errors.append((r["image"], label, pred, round(conf, 3)))
    n = len(rows)
    print("ocr-us-crops: %d crops | exact %.4f | char acc %.4f | state %.4f | stacked tried %d, used %d"
          % (n, n_exact / n, char_acc / n, n_state / n, n_stacked_tried, n_stacked_used))
    print("diagnostic: exact if O and 0 are treated as the same character %.4f" % (n_exact_o0 / n))
    for e in errors[:args.show_errors]:
        print("  %s label=%s pred=%s conf=%s" % e)


if __name__ == "__main__":
    main()
