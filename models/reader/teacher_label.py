"""Label real plate crops from the detector datasets with the PP-OCR teacher (rapidocr_onnxruntime).

Reads detect-roboflow-plates train+valid (never test) and detect-dashcam-ro train+valid, crops each
ground-truth plate with context, runs PP-OCRv4 det+rec on it, keeps only confident plate-like text
(4-8 alphanumerics after normalising) and maps printed US state names to postal codes.
Writes crops + labels.jsonl to a cache dir OUTSIDE the repo (default /work/cache/reader/teacher).

    python3 models/reader/teacher_label.py [--out /work/cache/reader/teacher] [--limit N]
"""
import argparse
import collections
import csv
import difflib
import json
import os
import re
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import STATE_NAMES, norm_text  # noqa: E402

DATA = os.environ.get("PLATE_DATA", "/work/shared/datasets")
NAME_TO_CODE = {re.sub(r"[^A-Z]", "", v.upper()): k for k, v in STATE_NAMES.items()}
NAME_TO_CODE["WASHINGTONDC"] = "DC"
NAME_TO_CODE["DISTRICTOFCOLUMBIA"] = "DC"
NOT_PLATE_WORDS = set(NAME_TO_CODE) | {"USA", "GOV", "STATE", "THE", "AMERICA", "COUNTY"}


def state_from_text(t):
    """Map a printed line (e.g. 'California', 'TEXAS', 'georgia.gov') to a postal code or None."""
    s = re.sub(r"[^A-Z]", "", t.upper())
    s = re.sub(r"GOV$", "", s)
    if len(s) < 4:
        return None
    if s in NAME_TO_CODE:
        return NAME_TO_CODE[s]
    best, code = 0.0, None
    for name, c in NAME_TO_CODE.items():
        r = difflib.SequenceMatcher(None, s, name).ratio()
        if r > best:
            best, code = r, c
    if best >= 0.86:
        return code
    # name embedded in a longer line ("EXPLORE MINNESOTA"): require a long exact substring
    for name, c in NAME_TO_CODE.items():
        if len(name) >= 5 and name in s and name != "WASHINGTON":
            return c
    return None


def roboflow_items(split):
    d = os.path.join(DATA, "detect-roboflow-plates", split)
    for fn in sorted(os.listdir(os.path.join(d, "labels"))):
        stem = fn[:-4]
        img = os.path.join(d, "images", stem + ".jpg")
        if not os.path.exists(img):
            continue
        for k, line in enumerate(open(os.path.join(d, "labels", fn)).read().split("\n")):
            v = [float(x) for x in line.split()]
            if len(v) == 5:
                _, cx, cy, w, h = v
                quad = [[cx - w / 2, cy - h / 2], [cx + w / 2, cy - h / 2],
                        [cx + w / 2, cy + h / 2], [cx - w / 2, cy + h / 2]]
            elif len(v) >= 9:
                pts = np.array(v[1:9]).reshape(4, 2)
                quad = order_quad(pts).tolist()
            else:
                continue
            yield ("rf_%s_%s_%d" % (split, stem, k), img, quad, True, stem.split("_jpg.rf.")[0] + "_%d" % k)


def dashcam_items():
    d = os.path.join(DATA, "detect-dashcam-ro")
    for k, row in enumerate(csv.DictReader(open(os.path.join(d, "labels.csv")))):
        if not row["w"] or float(row["w"]) <= 0:
            continue
        x, y, w, h = (float(row[c]) for c in "xywh")
        quad = [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
        name = os.path.basename(row["image"])
        yield ("ro_%d_%s" % (k, name[:-4]), os.path.join(d, row["image"]), quad, False, "ro_%d" % k)


def order_quad(pts):
    c = pts.mean(0)
    ang = np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0])
    p = pts[np.argsort(ang)]  # clockwise in image coords starting near -pi (left)
    i = np.argmin(p.sum(1))  # top-left
    return np.roll(p, -i, axis=0)


def read_plate(engine, crop):
    """Run det+rec on an (upscaled) plate crop; return (plate_text, score, state_code, raw)."""
    h, w = crop.shape[:2]
    scale = max(1.0, 128.0 / h)
    big = cv2.resize(crop, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_CUBIC)
    res, _ = engine(big, use_cls=False)
    if not res:
        return None, 0.0, None, []
    boxes = []
    state = None
    for box, text, score in res:
        b = np.array(box, np.float32)
        bh = float(np.linalg.norm(b[3] - b[0]) + np.linalg.norm(b[2] - b[1])) / 2
        cy = float(b[:, 1].mean())
        x0 = float(b[:, 0].min())
        st = state_from_text(text)
        if st and state is None:
            state = st
        boxes.append((bh, cy, x0, text, float(score), st))
    cand = [b for b in boxes if b[5] is None and len(norm_text(b[3])) >= 1]
    if not cand:
        return None, 0.0, state, boxes
    top = max(cand, key=lambda b: b[0])
    line = [b for b in cand if b[0] >= 0.7 * top[0] and abs(b[1] - top[1]) < 0.5 * top[0]]
    line.sort(key=lambda b: b[2])
    text = norm_text("".join(b[3] for b in line))
    score = min(b[4] for b in line)
    # the plate serial should be the dominant text: at least ~22% of the crop height
    if top[0] < 0.22 * big.shape[0]:
        return None, 0.0, state, boxes
    return text, score, state, boxes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/work/cache/reader/teacher")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--min-score", type=float, default=0.90)
    args = ap.parse_args()
    from rapidocr_onnxruntime import RapidOCR
    kw = {}
    for p in ("", "det_", "cls_", "rec_"):
        kw[p + "intra_op_num_threads"] = 1
        kw[p + "inter_op_num_threads"] = 1
    engine = RapidOCR(det_limit_side_len=160, det_limit_type="min", **kw)
    os.makedirs(os.path.join(args.out, "img"), exist_ok=True)
    items = list(roboflow_items("train")) + list(roboflow_items("valid")) + list(dashcam_items())
    if args.limit:
        items = items[:args.limit]
    rows, stats = [], collections.Counter()
    t0 = time.time()
    cache = {}
    for n, (key, path, quad, norm, group) in enumerate(items):
        if path not in cache:
            cache.clear()
            cache[path] = cv2.imread(path)
        img = cache[path]
        H, W = img.shape[:2]
        q = np.array(quad, np.float32)
        if norm:
            q = q * np.float32([W, H])
        x0, y0 = q.min(0)
        x1, y1 = q.max(0)
        bw, bh = x1 - x0, y1 - y0
        if bw < 12 or bh < 6:
            stats["tiny"] += 1
            continue
        # context crop: 25% margin, so training can re-expand the quad randomly
        mx, my = 0.25 * bw, 0.25 * bh
        cx0, cy0 = int(max(0, x0 - mx)), int(max(0, y0 - my))
        cx1, cy1 = int(min(W, x1 + mx)), int(min(H, y1 + my))
        ctx = img[cy0:cy1, cx0:cx1]
        # teacher sees the plate with a small margin
        tx0, ty0 = int(max(0, x0 - 0.04 * bw)), int(max(0, y0 - 0.06 * bh))
        tx1, ty1 = int(min(W, x1 + 0.04 * bw)), int(min(H, y1 + 0.06 * bh))
        text, score, state, raw = read_plate(engine, img[ty0:ty1, tx0:tx1])
        ok = (text is not None and score >= args.min_score and 4 <= len(text) <= 8
              and text not in NOT_PLATE_WORDS
              and (any(c.isdigit() for c in text) or score >= 0.95))
        stats["ok" if ok else "reject"] += 1
        if state:
            stats["state"] += 1
        if not ok:
            continue
        fn = key + ".png"
        cv2.imwrite(os.path.join(args.out, "img", fn), ctx)
        rows.append(dict(file=fn, text=text, score=round(score, 4), state=state or "",
                         quad=(q - np.float32([cx0, cy0])).round(2).tolist(), group=group,
                         src="roboflow" if norm else "dashcam-ro",
                         raw=[b[3] for b in raw]))
        if n % 100 == 0:
            print("%d/%d %.0fs %s %s %s" % (n, len(items), time.time() - t0, dict(stats), text, state),
                  flush=True)
    # consistency vote over roboflow augmented duplicates of the same plate
    by = collections.defaultdict(list)
    for r in rows:
        by[r["group"]].append(r)
    final = []
    for g, rs in by.items():
        c = collections.Counter(r["text"] for r in rs)
        best, cnt = c.most_common(1)[0]
        if len(rs) >= 2 and cnt < len(rs) / 2:
            stats["vote_drop"] += len(rs)
            continue
        for r in rs:
            if r["text"] != best:
                stats["vote_fix"] += 1
                r["text"] = best
            final.append(r)
    with open(os.path.join(args.out, "labels.jsonl"), "w") as f:
        for r in final:
            f.write(json.dumps(r) + "\n")
    stats["kept"] = len(final)
    stats["groups"] = len(by)
    stats["with_state"] = sum(1 for r in final if r["state"])
    print("done %.0fs" % (time.time() - t0), dict(stats))
    json.dump(dict(stats), open(os.path.join(args.out, "stats.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
