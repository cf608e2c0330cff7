"""Training samples for the box refiner: real plates (real-plate-crops, roboflow and dashcam train splits), crops cut
around simulated and real detector boxes, and non-plate crops (the detector's own false detections, random boxes)."""
import csv
import os
import sys

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "detector"))
sys.path.insert(0, os.path.join(HERE, "..", "reader"))
from common import expand_quad  # noqa: E402
from data import DATA_ROOT, apply_h, box_quad, load_dashcam, load_gray, load_roboflow  # noqa: E402
from eval_detector import decode, iou, preprocess, ort_runner  # noqa: E402

# The refiner's input (models/CONTRACT.md): the detection quad grown by MARGIN_X of its width left and right and
# MARGIN_Y of its height above and below, warped to IN_W x IN_H luma / 255.
IN_W, IN_H = 128, 48
MARGIN_X, MARGIN_Y = 0.30, 0.60
RECT = np.float32([[0, 0], [IN_W, 0], [IN_W, IN_H], [0, IN_H]])
DETECTOR_ONNX = os.path.normpath(os.path.join(HERE, "..", "plate_detector.onnx"))


def frame_of(q):
    """Centre, width vector and height vector of a TL,TR,BR,BL quad."""
    tl, tr, br, bl = q
    return q.mean(0), ((tr - tl) + (br - bl)) / 2.0, ((bl - tl) + (br - tr)) / 2.0


def warp_input(gray, det_quad):
    """The refiner's input for a detection quad and the homography from image to input pixels."""
    e = expand_quad(det_quad, MARGIN_X, MARGIN_Y)
    m = cv2.getPerspectiveTransform(e, RECT)
    crop = cv2.warpPerspective(gray, m, (IN_W, IN_H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop, m


def refined_quad(m, corners):
    """Input-normalised corners [8] back to image pixels through the inverse of `m`."""
    p = np.asarray(corners, np.float32).reshape(4, 2) * [IN_W, IN_H]
    return apply_h(np.linalg.inv(m), p[None].astype(np.float32))[0]


def qbox(q):
    return np.array([q[:, 0].min(), q[:, 1].min(), q[:, 0].max(), q[:, 1].max()], np.float32)


def perturb(rng, q, scale=1.0):
    """A detector-like quad around plate quad q: wrong size, shifted, slightly rotated, noisy corners."""
    c, u, v = frame_of(q)
    a = np.clip(np.exp(rng.normal(0, 0.17 * scale)), 0.6, 1.6)
    b = np.clip(np.exp(rng.normal(0, 0.20 * scale)), 0.55, 1.7)
    c = c + u * np.clip(rng.normal(0, 0.08 * scale), -0.25, 0.25) + v * np.clip(rng.normal(0, 0.12 * scale), -0.35, 0.35)
    t = np.deg2rad(rng.normal(0, 3.0 * scale))
    r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]], np.float32)
    u, v = r @ u, r @ v
    d = np.stack([c - a * u / 2 - b * v / 2, c + a * u / 2 - b * v / 2, c + a * u / 2 + b * v / 2, c - a * u / 2 + b * v / 2])
    d = d + rng.normal(0, 0.04 * scale * np.linalg.norm(v) + 1e-3, d.shape)
    if rng.random() < 0.3:
        d = box_quad(*qbox(d))
    return d.astype(np.float32)


def load_real_crops(split):
    """real-plate-crops: (gray crop, [plate quad])."""
    root = os.path.join(DATA_ROOT, "real-plate-crops")
    out = []
    with open(os.path.join(root, "crops.csv")) as f:
        for r in csv.DictReader(f):
            if r["split"] != split:
                continue
            x, y, w, h = (float(r[k]) for k in ("plate_x", "plate_y", "plate_w", "plate_h"))
            if w < 8 or h < 4:
                continue
            out.append((load_gray(os.path.join(root, r["image"])), np.array([box_quad(x, y, x + w, y + h)], np.float32)))
    return out


def detector_boxes(scenes, onnx=DETECTOR_ONNX, thr=0.15):
    """Run the shipped detector on each scene (as the runtime does: 640x384) and split its quads into those that
    match a labelled plate (IoU >= 0.3: real detector errors, paired with the plate) and false detections (IoU < 0.05
    with every labelled plate)."""
    run = ort_runner(onnx)
    hits, misses = [], []
    for i, (gray, quads) in enumerate(scenes):
        x, s = preprocess(gray, 640, 384)
        hm, geo = run(x)
        gts = np.array([qbox(q) for q in quads], np.float32).reshape(-1, 4)
        for sc, q, b in decode(hm, geo, thr=thr)[:10]:
            q, b = q / s, b / s
            ious = iou(b, gts) if len(gts) else np.zeros(0)
            if len(ious) and ious.max() >= 0.3:
                hits.append((i, int(np.argmax(ious)), q.astype(np.float32)))
            elif not len(ious) or ious.max() < 0.05:
                misses.append((i, q.astype(np.float32)))
    return hits, misses


def photometric(rng, img):
    img = img.astype(np.float32)
    if rng.random() < 0.35:  # low resolution: the plate was small in the frame
        f = rng.uniform(0.25, 0.7)
        small = cv2.resize(img, (max(8, int(IN_W * f)), max(4, int(IN_H * f))), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (IN_W, IN_H), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.25:
        k = int(rng.integers(3, 8))
        kern = np.zeros((k, k), np.float32)
        kern[k // 2, :] = 1.0 / k
        img = cv2.filter2D(img, -1, kern)
    elif rng.random() < 0.2:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.5))
    lo, hi = np.percentile(img, 2), np.percentile(img, 98)
    if rng.random() < 0.5 and hi - lo > 10:
        c = rng.uniform(0.35, 1.2)
        img = (img - img.mean()) * c + img.mean() + rng.uniform(-50, 50)
    if rng.random() < 0.3:
        img = 255.0 * (np.clip(img, 0, 255) / 255.0) ** rng.uniform(0.5, 1.8)
    if rng.random() < 0.06:
        img = 255.0 - img
    if rng.random() < 0.4:
        img = img + rng.normal(0, rng.uniform(2, 12), img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(20, 90))])
        img = cv2.imdecode(enc, cv2.IMREAD_GRAYSCALE)
    return img


FLIP = [1, 0, 3, 2]  # corner order after a horizontal flip: TL<-TR, TR<-TL, BR<-BL, BL<-BR


class Sampler:
    """Draws (input uint8 [48,128], corners [8] normalised, is_plate) samples."""

    def __init__(self, crops, scenes, hits, misses, seed=0, neg_frac=0.2):
        self.crops, self.scenes, self.hits, self.misses = crops, scenes, hits, misses
        self.rng = np.random.default_rng(seed)
        self.neg_frac = neg_frac
        self.plates = [(i, j) for i, (_, qs) in enumerate(scenes) for j in range(len(qs))]

    def positive(self):
        rng = self.rng
        r = rng.random()
        if r < 0.25 and self.hits:
            i, j, d = self.hits[int(rng.integers(len(self.hits)))]
            gray, q = self.scenes[i][0], self.scenes[i][1][j]
            d = perturb(rng, d, 0.3)
        elif r < 0.6:
            i, j = self.plates[int(rng.integers(len(self.plates)))]
            gray, q = self.scenes[i][0], self.scenes[i][1][j]
            d = perturb(rng, q)
        else:
            gray, qs = self.crops[int(rng.integers(len(self.crops)))]
            q = qs[0]
            d = perturb(rng, q)
        img, m = warp_input(gray, d)
        t = apply_h(m, q[None])[0] / [IN_W, IN_H]
        return img, t.reshape(8).astype(np.float32)

    def negative(self):
        rng = self.rng
        if self.misses and rng.random() < 0.6:
            i, d = self.misses[int(rng.integers(len(self.misses)))]
            gray = self.scenes[i][0]
            d = perturb(rng, d, 0.3)
        else:
            i = int(rng.integers(len(self.scenes)))
            gray, qs = self.scenes[i]
            hh, ww = gray.shape
            for _ in range(10):
                w = rng.uniform(16, min(200, ww * 0.6))
                h = w / rng.uniform(1.8, 5.0)
                x, y = rng.uniform(0, ww - w), rng.uniform(0, hh - h)
                b = np.array([x, y, x + w, y + h], np.float32)
                gts = np.array([qbox(q) for q in qs], np.float32).reshape(-1, 4)
                if not len(gts) or iou(b, gts).max() < 0.05:
                    break
            d = box_quad(*b)
        img, _ = warp_input(gray, d)
        return img, np.zeros(8, np.float32)

    def sample(self):
        neg = self.rng.random() < self.neg_frac
        img, t = self.negative() if neg else self.positive()
        img = photometric(self.rng, img)
        if self.rng.random() < 0.5:
            img = img[:, ::-1].copy()
            t = t.reshape(4, 2)[FLIP].copy()
            t[:, 0] = 1.0 - t[:, 0]
            t = t.reshape(8)
        return img, t, 0.0 if neg else 1.0

    def batch(self, n):
        xs, ts, ps = zip(*(self.sample() for _ in range(n)))
        return np.stack(xs)[:, None].astype(np.float32) / 255.0, np.stack(ts), np.array(ps, np.float32)


def load_all(split_scenes="train"):
    """Scenes (roboflow + dashcam train) as (gray, quads [k,4,2])."""
    rf = load_roboflow([split_scenes])
    dc = load_dashcam(split_scenes)
    return [(g, q) for g, q in rf + dc]
