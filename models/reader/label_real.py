"""Label real plates with two independent teachers and keep what they agree on (reader v2's real data).

Teachers (never shipped, never used as starting weights; see ../shared/teachers/README.md):
- fast-plate-ocr cct-xs-v2-global (onnxruntime): the plate box, no margin, resized to 128x64 RGB;
  10 slots, `_` pads; also its region head (66 regions, used as the region label).
- PP-OCR: for real-plate-crops the PP-OCRv6 rec reads that ship beside it (`teacher_reads.csv`, rapidocr
  3.10, the plate box plus 8%/12%); elsewhere PP-OCRv4 det + rec (the `rapidocr_onnxruntime` wheel) on the
  plate box with a small margin, upscaled: the tallest text line (same-height boxes on it merged), state
  names dropped.
A plate is kept when both give the same text after normalising (0-9A-Z), 2-10 characters (`rule` = `agree`).
With `--third-opinion ONNX` (a reader of ours trained on agreed plates only, which never saw the plates in
question), a train-split plate the two teachers read differently is also kept when cct is sure (every slot at
least `--cct-sure`, 0.9) and that reader reads exactly cct's text (`rule` = `cct+ours`): PP-OCR, a general text
reader, misses many plates (state names, two lines, stickers) that cct reads right. Held-out `valid` plates are
only ever `agree`.

Sources (scenes-dev's images are never read: that is roboflow `test` and dashcam-ro `valid`):
- real-plate-crops, both splits (its `valid` split is the held-out set of the reader's bar);
- detect-roboflow-plates `train` and `valid`;
- detect-dashcam-ro `train`.

Writes models/reader/labels/real_labels.csv (committed: text labels and boxes, no images) and prints
counts per source. About 10 minutes on one core; `--all-out FILE` also keeps every plate's teacher reads, and
`--from-reads FILE` applies the rules to such a file again without running the teachers.

    python3 models/reader/label_real.py [--limit N] [--out models/reader/labels/real_labels.csv]
    python3 models/reader/label_real.py --all-out /work/cache/reader/all_reads.csv \
        --third-opinion /work/cache/reader/v12.onnx          # reader v14's labels
"""
import argparse
import collections
import csv
import difflib
import os
import re
import sys
import time

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import STATE_NAMES, norm_text  # noqa: E402

DATA = os.environ.get("PLATE_DATA", os.path.join(HERE, "..", "..", "..", "shared", "datasets"))
TEACHERS = os.environ.get("PLATE_TEACHERS", os.path.join(HERE, "..", "..", "..", "shared", "teachers"))
OUT = os.path.join(HERE, "labels", "real_labels.csv")
CCT_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_"
FIELDS = ["key", "source", "split", "image", "quad", "text", "rule", "cct_text", "cct_min_prob", "ppocr_text",
          "ppocr_score", "region", "region_prob", "state", "group"]

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



def real_crop_items():
    d = os.path.join(DATA, "real-plate-crops")
    for row in csv.DictReader(open(os.path.join(d, "crops.csv"))):
        x, y, w, h = (float(row[k]) for k in ("plate_x", "plate_y", "plate_w", "plate_h"))
        quad = [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
        split = "valid" if row["split"] == "valid" else "train"
        yield dict(key="rpc/" + row["image"], source="real-plate-crops/" + row["source"], split=split,
                   image="real-plate-crops/" + row["image"], quad=quad, norm=False, group=row["image"],
                   ppocr=PPOCR_READS.get(row["image"]))


def _ppocr_reads():
    p = os.path.join(DATA, "real-plate-crops", "teacher_reads.csv")
    if not os.path.exists(p):
        return {}
    return {r["image"]: (norm_text(r["ppocr_text"]), float(r["ppocr_score"] or 0))
            for r in csv.DictReader(open(p))}


PPOCR_READS = _ppocr_reads()


def roboflow_items(split):
    d = os.path.join(DATA, "detect-roboflow-plates", split)
    for fn in sorted(os.listdir(os.path.join(d, "labels"))):
        stem = fn[:-4]
        rel = os.path.join("detect-roboflow-plates", split, "images", stem + ".jpg")
        if not os.path.exists(os.path.join(DATA, rel)):
            continue
        for k, line in enumerate(open(os.path.join(d, "labels", fn)).read().split("\n")):
            v = [float(x) for x in line.split()]
            if len(v) == 5:
                _, cx, cy, w, h = v
                quad = [[cx - w / 2, cy - h / 2], [cx + w / 2, cy - h / 2],
                        [cx + w / 2, cy + h / 2], [cx - w / 2, cy + h / 2]]
            elif len(v) >= 9:
                quad = order_quad(np.array(v[1:9]).reshape(4, 2)).tolist()
            else:
                continue
            # augmented copies of one photo share the stem before `_jpg.rf.`: one group, one split
            yield dict(key="rf/%s/%s/%d" % (split, stem, k), source="roboflow", split="train", image=rel,
                       quad=quad, norm=True, group="rf/" + stem.split("_jpg.rf.")[0] + "/%d" % k)


def dashcam_items():
    d = os.path.join(DATA, "detect-dashcam-ro")
    for k, row in enumerate(csv.DictReader(open(os.path.join(d, "labels.csv")))):
        if not row["image"].startswith("train/") or not row["w"] or float(row["w"]) <= 0:
            continue
        x, y, w, h = (float(row[c]) for c in "xywh")
        yield dict(key="ro/%d" % k, source="dashcam-ro", split="train",
                   image=os.path.join("detect-dashcam-ro", row["image"]),
                   quad=[[x, y], [x + w, y], [x + w, y + h], [x, y + h]], norm=False, group="ro/%d" % k)


class Cct:
    """fast-plate-ocr's reader as its README describes it: uint8 RGB [N,64,128,3], argmax per slot."""

    def __init__(self):
        import onnxruntime as ort
        import yaml
        o = ort.SessionOptions()
        o.intra_op_num_threads = 1
        o.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(os.path.join(TEACHERS, "fast-alpr", "cct_xs_v2_global.onnx"), o,
                                         providers=["CPUExecutionProvider"])
        cfg = yaml.safe_load(open(os.path.join(TEACHERS, "fast-alpr", "cct_xs_v2_global_plate_config.yaml")))
        self.regions = cfg["plate_regions"]

    def read(self, bgr_box):
        x = cv2.resize(cv2.cvtColor(bgr_box, cv2.COLOR_BGR2RGB), (128, 64), interpolation=cv2.INTER_LINEAR)
        plate, region = self.sess.run(None, {self.sess.get_inputs()[0].name: x[None]})
        p = plate[0]
        idx = p.argmax(1)
        text = "".join(CCT_ALPHABET[i] for i in idx if CCT_ALPHABET[i] != "_")
        r = int(region[0].argmax())
        return text, float(p.max(1).min()), self.regions[r], float(region[0][r])


def plausible(text):
    """A serial, not a word of the plate's frame: 2-10 characters, not a state name or a known frame word."""
    return 2 <= len(text) <= 10 and text not in NOT_PLATE_WORDS and state_from_text(text) is None


def teacher_reads(items):
    """Both teachers' reads of every plate: one row per plate (FIELDS, `text` and `rule` left empty)."""
    from rapidocr_onnxruntime import RapidOCR
    kw = {}
    for p in ("", "det_", "cls_", "rec_"):
        kw[p + "intra_op_num_threads"] = 1
        kw[p + "inter_op_num_threads"] = 1
    ppocr = RapidOCR(det_limit_side_len=160, det_limit_type="min", **kw)
    cct = Cct()
    stats = collections.Counter()
    out = []
    t0 = time.time()
    img, img_path = None, None
    for n, it in enumerate(items):
        if n % 250 == 0:
            print("%d/%d %.0fs %s" % (n, len(items), time.time() - t0, dict(stats)), flush=True)
        path = os.path.join(DATA, it["image"])
        if path != img_path:
            img, img_path = cv2.imread(path), path
        if img is None:
            stats["unreadable_image"] += 1
            continue
        H, W = img.shape[:2]
        q = np.float32(it["quad"]) * (np.float32([W, H]) if it["norm"] else 1)
        x0, y0 = np.maximum(q.min(0), 0)
        x1, y1 = np.minimum(q.max(0), [W, H])
        bw, bh = x1 - x0, y1 - y0
        src = it["source"].split("/")[0]
        if bw < 16 or bh < 8:
            stats[src + " tiny"] += 1
            continue
        box = img[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))]
        ct, cmin, region, rprob = cct.read(box)
        tx0, ty0 = int(max(0, x0 - 0.04 * bw)), int(max(0, y0 - 0.06 * bh))
        tx1, ty1 = int(min(W, x1 + 0.04 * bw)), int(min(H, y1 + 0.06 * bh))
        if it.get("ppocr") is not None:
            (pt, ps), state = it["ppocr"], None
        else:
            pt, ps, state, _ = read_plate(ppocr, img[ty0:ty1, tx0:tx1])
            pt = pt or ""
        stats[src] += 1
        out.append(dict(key=it["key"], source=it["source"], split=it["split"], image=it["image"],
                        quad=" ".join("%.1f" % v for v in q.reshape(-1)), text="", rule="", cct_text=ct,
                        cct_min_prob="%.4f" % cmin, ppocr_text=pt, ppocr_score="%.4f" % ps, region=region,
                        region_prob="%.4f" % rprob, state=state or "", group=it["group"]))
    print("teachers read %d plates in %.0fs %s" % (len(out), time.time() - t0, dict(stats)), flush=True)
    return out


def third_opinion_reads(rows, onnx):
    """Our own earlier reader's read of each row's plate (as core reads a still: line, re-checks, and the
    stacked layout for squarish quads), for the plates the teachers disagree on."""
    import onnxruntime as ort
    from common import ctc_greedy, read_line, warp_stacked
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(onnx, so, providers=["CPUExecutionProvider"])
    run = lambda x: sess.run(None, {"image": x})  # noqa: E731
    img, img_path, reads = None, None, {}
    for r in rows:
        path = os.path.join(DATA, r["image"])
        if path != img_path:
            img, img_path = cv2.imread(path, cv2.IMREAD_GRAYSCALE), path
        q = np.float32(r["quad"].split()).reshape(4, 2)
        text, conf, _ = read_line(run, img, q)
        if np.linalg.norm(q[1] - q[0]) < 1.6 * np.linalg.norm(q[3] - q[0]):
            st_text, st_conf = ctc_greedy(run(warp_stacked(img, q)[None, None].astype(np.float32) / 255.0)[0][0])
            if st_text and st_conf > conf:
                text = st_text
        reads[r["key"]] = text
    return reads


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--limit", type=int, default=0, help="items per source (0 = all)")
    ap.add_argument("--all-out", default="", help="also write every plate's teacher reads here (kept or not)")
    ap.add_argument("--from-reads", default="",
                    help="take the teachers' reads from an earlier --all-out file instead of running them")
    ap.add_argument("--third-opinion", default="",
                    help="reader ONNX trained on agreed plates only: a plate the teachers disagree on is kept "
                         "when cct is sure (every slot >= --cct-sure) and this reader reads the same text")
    ap.add_argument("--cct-sure", type=float, default=0.9)
    args = ap.parse_args()
    if args.from_reads:
        every = list(csv.DictReader(open(args.from_reads)))
    else:
        sources = [real_crop_items(), roboflow_items("train"), roboflow_items("valid"), dashcam_items()]
        items = []
        for s in sources:
            s = list(s)
            items += s[:args.limit] if args.limit else s
        every = teacher_reads(items)
    stats = collections.Counter()
    for r in every:
        r["text"], r["rule"] = "", ""
        if r["cct_text"] == r["ppocr_text"] and plausible(r["cct_text"]):
            r["text"], r["rule"] = r["cct_text"], "agree"
    if args.third_opinion:
        # only train-split plates: the held-out `valid` plates stay the ones both teachers agree on
        doubt = [r for r in every if not r["rule"] and r["split"] == "train" and plausible(r["cct_text"])
                 and float(r["cct_min_prob"]) >= args.cct_sure]
        ours = third_opinion_reads(doubt, args.third_opinion)
        for r in doubt:
            if ours[r["key"]] == r["cct_text"]:
                r["text"], r["rule"] = r["cct_text"], "cct+ours"
    for r in every:
        stats["%s %s" % (r["source"].split("/")[0], r["rule"] or "dropped")] += 1
    rows = [r for r in every if r["rule"]]
    # a group (augmented copies of one roboflow plate) keeps only its majority text; ties are dropped
    by = collections.defaultdict(list)
    for r in rows:
        by[r["group"]].append(r)
    final = []
    for rs in by.values():
        (best, cnt), = collections.Counter(r["text"] for r in rs).most_common(1)
        if cnt * 2 <= len(rs) and len(rs) > 1:
            stats["group_tie_dropped"] += len(rs)
            continue
        final += [r for r in rs if r["text"] == best]
        stats["group_minority_dropped"] += sum(r["text"] != best for r in rs)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(final)
    if args.all_out:
        with open(args.all_out, "w", newline="") as f:
            w = csv.DictWriter(f, FIELDS, extrasaction="ignore")
            w.writeheader()
            w.writerows(every)
    per = collections.Counter((r["source"].split("/")[0], r["split"]) for r in final)
    print("kept %d %s" % (len(final), dict(per)))
    print(dict(stats))


if __name__ == "__main__":
    main()
