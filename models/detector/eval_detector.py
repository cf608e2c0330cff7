"""Evaluate the exported plate_detector.onnx with onnxruntime on an eval CSV (image,x,y,w,h,text): recall/precision."""
import argparse
import csv
import os
import time

import cv2
import numpy as np

STRIDE = 4


def preprocess(gray, in_w, in_h):
    """Resize keeping aspect to fit (in_w,in_h) (bilinear), pad right/bottom with zeros to multiples of 32.

    Returns the [1,1,H,W] float32 tensor (Y/255) and the scale (input px per original px)."""
    h, w = gray.shape
    s = min(in_w / w, in_h / h)
    nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
    nw, nh = min(nw, in_w), min(nh, in_h)
    r = cv2.resize(gray, (nw, nh), interpolation=cv2.INTER_LINEAR)
    H, W = (nh + 31) // 32 * 32, (nw + 31) // 32 * 32
    x = np.zeros((1, 1, H, W), np.float32)
    x[0, 0, :nh, :nw] = r.astype(np.float32) / 255.0
    return x, s


def nms_boxes(boxes, scores, iou_thr):
    order = np.argsort(-scores)
    keep = []
    while len(order):
        i = order[0]
        keep.append(i)
        if len(order) == 1:
            break
        ious = iou(boxes[i], boxes[order[1:]])
        order = order[1:][ious <= iou_thr]
    return keep


def decode(heatmap, geometry, thr=0.3, nms_iou=0.4, max_det=100):
    """heatmap [h,w], geometry [8,h,w] -> list of (score, quad(4,2) in input px, box x0,y0,x1,y1)."""
    hm = heatmap.astype(np.float32)
    mx = cv2.dilate(hm, np.ones((3, 3), np.uint8))  # 3x3 local max (border treated like -inf padding)
    rr, cc = np.nonzero((hm >= mx) & (hm > thr))
    if len(rr) == 0:
        return []
    sc = hm[rr, cc]
    g = geometry[:, rr, cc].T.reshape(-1, 4, 2)
    quads = np.empty_like(g)
    quads[:, :, 0] = (cc[:, None] + 0.5 + g[:, :, 0]) * STRIDE
    quads[:, :, 1] = (rr[:, None] + 0.5 + g[:, :, 1]) * STRIDE
    boxes = np.concatenate([quads.min(1), quads.max(1)], 1)
    keep = nms_boxes(boxes, sc, nms_iou)[:max_det]
    return [(float(sc[i]), quads[i], boxes[i]) for i in keep]


def iou(b, bs):
    bs = np.asarray(bs, np.float32).reshape(-1, 4)
    x0 = np.maximum(b[0], bs[:, 0]); y0 = np.maximum(b[1], bs[:, 1])
    x1 = np.minimum(b[2], bs[:, 2]); y1 = np.minimum(b[3], bs[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    a = (b[2] - b[0]) * (b[3] - b[1])
    a2 = (bs[:, 2] - bs[:, 0]) * (bs[:, 3] - bs[:, 1])
    return inter / np.maximum(a + a2 - inter, 1e-9)


def match(det_boxes, gt_boxes, iou_thr=0.3):
    """A plate is found when a detection has IoU>=0.3 with it OR contains its centre.

    A detection is a true positive when it satisfies the same criterion with some labelled plate."""
    nd, ng = len(det_boxes), len(gt_boxes)
    if nd == 0 or ng == 0:
        return np.zeros(ng, bool), np.zeros(nd, bool)
    D = np.asarray(det_boxes, np.float32).reshape(-1, 4)
    G = np.asarray(gt_boxes, np.float32).reshape(-1, 4)
    ok = np.zeros((nd, ng), bool)
    for j in range(ng):
        cx, cy = (G[j, 0] + G[j, 2]) / 2, (G[j, 1] + G[j, 3]) / 2
        inside = (D[:, 0] <= cx) & (cx <= D[:, 2]) & (D[:, 1] <= cy) & (cy <= D[:, 3])
        ok[:, j] = (iou(G[j], D) >= iou_thr) | inside
    return ok.any(0), ok.any(1)


def read_csv(path):
    base = os.path.dirname(os.path.abspath(path))
    items = {}
    with open(path) as f:
        for r in csv.DictReader(f):
            p = os.path.normpath(os.path.join(base, r["image"]))
            lst = items.setdefault(p, [])
            if r["x"].strip() != "":
                x, y, w, h = (float(r[k]) for k in "xywh")
                lst.append((x, y, x + w, y + h))
    return list(items.items())


def run_eval(run_fn, items, in_w, in_h, thrs):
    """run_fn(x[1,1,H,W]) -> (heatmap[h,w], geometry[8,h,w]). Returns {thr: (recall, precision, tp, n_gt, fp_det, n_det)}."""
    res = {t: [0, 0, 0, 0] for t in thrs}  # found, n_gt, correct_det, n_det
    tmin = min(thrs)
    t_inf = 0.0
    for path, gts in items:
        gray = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY)
        x, s = preprocess(gray, in_w, in_h)
        t0 = time.perf_counter()
        hm, geo = run_fn(x)
        t_inf += time.perf_counter() - t0
        dets = decode(hm, geo, thr=tmin)
        for t in thrs:
            d = [b / s for sc, q, b in dets if sc > t]
            found, good = match(d, gts)
            r = res[t]
            r[0] += int(found.sum()); r[1] += len(gts); r[2] += int(good.sum()); r[3] += len(d)
    out = {}
    for t, (f, n, g, nd) in res.items():
        out[t] = (f / max(n, 1), g / max(nd, 1), f, n, nd - g, nd)
    return out, t_inf / max(len(items), 1)


def ort_runner(onnx_path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])

    def run(x):
        hm, geo = sess.run(["heatmap", "geometry"], {"image": x})
        return hm[0, 0], geo[0]
    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--onnx", default=os.path.join(os.path.dirname(__file__), "..", "plate_detector.onnx"))
    ap.add_argument("--csv", required=True, nargs="+")
    ap.add_argument("--size", default="640x384", nargs="+", help="input WxH box(es) the image is fitted into")
    ap.add_argument("--thr", type=float, nargs="+", default=[0.3])
    args = ap.parse_args()
    run = ort_runner(args.onnx)
    sizes = args.size if isinstance(args.size, list) else [args.size]
    for c in args.csv:
        items = read_csv(c)
        for sz in sizes:
            w, h = (int(v) for v in sz.lower().split("x"))
            out, ms = run_eval(run, items, w, h, args.thr)
            for t in args.thr:
                rec, prec, f, n, fp, nd = out[t]
                print(f"{os.path.basename(c)} size={w}x{h} thr={t:.2f}: recall={rec:.4f} ({f}/{n}) "
                      f"precision={prec:.4f} ({nd - fp}/{nd}) false_pos={fp} images={len(items)} "
                      f"ort_ms_per_image={ms * 1000:.1f}")


if __name__ == "__main__":
    main()
