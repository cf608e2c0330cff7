"""Data loading, multi-scale augmentation and CenterNet target building for the plate detector."""
import csv
import glob
import os

import cv2
import numpy as np

DATA_ROOT = os.environ.get("PLATEWATCH_DATA", "/work/shared/datasets")
STRIDE = 4


# ----------------------------------------------------------------------------- labels
def order_quad(pts):
    """Order 4 points as TL, TR, BR, BL (clockwise in image coordinates, top edge first)."""
    pts = np.asarray(pts, np.float32).reshape(4, 2)
    c = pts.mean(0)
    ang = np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0])
    pts = pts[np.argsort(ang)]  # clockwise on screen (y down)
    # choose the cyclic start whose edge (i, i+1) is the top edge (smallest mean y)
    best = min(range(4), key=lambda i: pts[i, 1] + pts[(i + 1) % 4, 1])
    return np.roll(pts, -best, axis=0)


def quad_from_polygon(pts):
    """Reduce an arbitrary polygon (>= 3 points) to a TL,TR,BR,BL quad."""
    pts = np.asarray(pts, np.float32).reshape(-1, 2)
    if len(pts) >= 2 and np.allclose(pts[0], pts[-1], atol=1e-4):
        pts = pts[:-1]
    if len(pts) == 4:
        return order_quad(pts)
    s = pts[:, 0] + pts[:, 1]
    d = pts[:, 0] - pts[:, 1]
    idx = [int(np.argmin(s)), int(np.argmax(d)), int(np.argmax(s)), int(np.argmin(d))]
    if len(set(idx)) == 4:
        return order_quad(pts[idx])
    box = cv2.boxPoints(cv2.minAreaRect(pts.astype(np.float32)))
    return order_quad(box)


def box_quad(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def parse_yolo(path, w, h):
    """Roboflow YOLO label file -> list of (4,2) pixel quads."""
    quads = []
    if not os.path.exists(path):
        return quads
    for line in open(path):
        v = line.split()
        if len(v) < 5:
            continue
        nums = [float(t) for t in v[1:]]
        if len(nums) == 4:
            cx, cy, bw, bh = nums
            quads.append(box_quad((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h))
        else:
            n = len(nums) // 2 * 2
            pts = np.array(nums[:n], np.float32).reshape(-1, 2) * [w, h]
            if len(pts) >= 3:
                quads.append(quad_from_polygon(pts))
    return quads


def roboflow_items(split):
    """List of (image_path, [quads]) for a roboflow split."""
    out = []
    for p in sorted(glob.glob(os.path.join(DATA_ROOT, "detect-roboflow-plates", split, "images", "*"))):
        lab = os.path.join(os.path.dirname(os.path.dirname(p)), "labels", os.path.splitext(os.path.basename(p))[0] + ".txt")
        out.append((p, lab))
    return out


def dashcam_items(split):
    """List of (image_path, [(x,y,w,h), ...]) for a dashcam split."""
    root = os.path.join(DATA_ROOT, "detect-dashcam-ro")
    boxes = {}
    with open(os.path.join(root, "labels.csv")) as f:
        for r in csv.DictReader(f):
            if not r["image"].startswith(split + "/"):
                continue
            lst = boxes.setdefault(os.path.join(root, r["image"]), [])
            if r["x"].strip() != "":
                lst.append(tuple(float(r[k]) for k in "xywh"))
    return sorted(boxes.items())


def load_gray(path):
    """BT.601 luma, uint8 (cv2's BGR2GRAY uses 0.299/0.587/0.114)."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def load_roboflow(splits):
    data = []
    for s in splits:
        for p, lab in roboflow_items(s):
            g = load_gray(p)
            h, w = g.shape
            data.append((g, np.array(parse_yolo(lab, w, h), np.float32).reshape(-1, 4, 2)))
    return data


def load_dashcam(split, keep=None):
    data = []
    for i, (p, bxs) in enumerate(dashcam_items(split)):
        if keep is not None and not keep(i):
            continue
        g = load_gray(p)
        q = [box_quad(x, y, x + w, y + h) for x, y, w, h in bxs]
        data.append((g, np.array(q, np.float32).reshape(-1, 4, 2)))
    return data


# ----------------------------------------------------------------------------- geometry
def apply_h(H, quads):
    if len(quads) == 0:
        return quads
    p = quads.reshape(-1, 2)
    p = np.concatenate([p, np.ones((len(p), 1), np.float32)], 1) @ H.T
    p = p[:, :2] / p[:, 2:3]
    return p.reshape(-1, 4, 2).astype(np.float32)


def make_h(rng, scale, cx, cy, ox, oy, rot_deg=0.0, persp=0.0, flip=False):
    """Homography: source point (cx,cy) -> output point (ox,oy), scaled, rotated, slightly perspective."""
    T1 = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], np.float64)
    a = np.deg2rad(rot_deg)
    sx = -scale if flip else scale
    R = np.array([[np.cos(a) * sx, -np.sin(a) * scale, 0], [np.sin(a) * sx, np.cos(a) * scale, 0], [0, 0, 1]], np.float64)
    P = np.eye(3)
    if persp > 0:
        P[2, 0] = rng.uniform(-persp, persp) / max(scale, 1e-3)
        P[2, 1] = rng.uniform(-persp, persp) / max(scale, 1e-3)
    T2 = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1]], np.float64)
    return (T2 @ P @ R @ T1).astype(np.float64)


def fix_flip(quads, flipped):
    """After a mirror the corners come out as TR,TL,BL,BR: restore TL,TR,BR,BL."""
    if flipped and len(quads):
        quads = quads[:, [1, 0, 3, 2]]
    return quads


def warp(img, H, size, border=0):
    return cv2.warpPerspective(img, H, (size[1], size[0]), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=border)


# ----------------------------------------------------------------------------- augmentation
class Augmenter:
    def __init__(self, roboflow, dashcam, size=256, seed=0):
        self.rf = roboflow
        self.dc = dashcam
        self.S = size
        self.rng = np.random.default_rng(seed)

    def _dashcam_canvas(self):
        rng, S = self.rng, self.S
        img, quads = self.dc[rng.integers(len(self.dc))]
        # runtime scales a 1280x720 frame by 0.5 .. 0.75; go wider for robustness
        scale = float(np.exp(rng.uniform(np.log(0.3), np.log(1.3))))
        h, w = img.shape
        if len(quads) and rng.random() < 0.85:
            q = quads[rng.integers(len(quads))]
            c = q.mean(0)
            ox, oy = rng.uniform(0.1 * S, 0.9 * S), rng.uniform(0.1 * S, 0.9 * S)
            cx, cy = c
        else:
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            ox, oy = S / 2, S / 2
        flip = rng.random() < 0.5
        rot = rng.normal(0, 4) if rng.random() < 0.5 else 0.0
        H = make_h(rng, scale, cx, cy, ox, oy, rot, 2e-4 if rng.random() < 0.3 else 0.0, flip)
        out = warp(img, H, (S, S))
        return out, fix_flip(apply_h(H, quads), flip)

    def _plain_canvas(self):
        rng, S = self.rng, self.S
        r = rng.random()
        if r < 0.4:
            return np.zeros((S, S), np.uint8)
        if r < 0.7:
            return np.full((S, S), rng.integers(0, 256), np.uint8)
        small = rng.integers(0, 256, (rng.integers(2, 9), rng.integers(2, 9))).astype(np.uint8)
        return cv2.resize(small, (S, S), interpolation=cv2.INTER_CUBIC)

    def _paste_roboflow(self, canvas, quads, big):
        rng, S = self.rng, self.S
        img, q = self.rf[rng.integers(len(self.rf))]
        h, w = img.shape
        if big:   # like runtime: 300x300 scaled up to 384..544 and plates large
            side = rng.uniform(0.8, 2.2) * S
        else:
            side = float(np.exp(rng.uniform(np.log(40), np.log(1.0 * S))))
        scale = side / max(h, w)
        flip = rng.random() < 0.5
        rot = rng.normal(0, 5) if rng.random() < 0.6 else 0.0
        if big and len(q) and rng.random() < 0.7:
            c = q[rng.integers(len(q))].mean(0)
            cx, cy = c
            ox, oy = rng.uniform(0.2 * S, 0.8 * S), rng.uniform(0.2 * S, 0.8 * S)
        else:
            cx, cy = w / 2, h / 2
            ox, oy = rng.uniform(0, S), rng.uniform(0, S)
        H = make_h(rng, scale, cx, cy, ox, oy, rot, 3e-4 if rng.random() < 0.4 else 0.0, flip)
        pasted = warp(img, H, (S, S))
        mask = warp(np.full((h, w), 255, np.uint8), H, (S, S)) > 127
        canvas = np.where(mask, pasted, canvas)
        # drop earlier plates whose centre got covered
        keep = []
        for qq in quads:
            cx_, cy_ = qq.mean(0)
            ix, iy = int(cx_), int(cy_)
            keep.append(not (0 <= ix < S and 0 <= iy < S and mask[iy, ix]))
        quads = quads[np.array(keep, bool)] if len(quads) else quads
        nq = fix_flip(apply_h(H, q), flip)
        quads = np.concatenate([quads.reshape(-1, 4, 2), nq.reshape(-1, 4, 2)], 0)
        return canvas, quads

    def photometric(self, img):
        rng = self.rng
        x = img.astype(np.float32)
        if rng.random() < 0.8:
            a = rng.uniform(0.5, 1.4)
            b = rng.uniform(-50, 50)
            x = (x - 128) * a + 128 + b
        if rng.random() < 0.3:
            g = rng.uniform(0.6, 1.6)
            x = 255 * (np.clip(x, 0, 255) / 255) ** g
        if rng.random() < 0.25:
            k = rng.choice([3, 5])
            x = cv2.GaussianBlur(x, (int(k), int(k)), rng.uniform(0.5, 1.6))
        elif rng.random() < 0.1:
            k = int(rng.integers(3, 8))
            ker = np.zeros((k, k), np.float32)
            ker[k // 2, :] = 1.0 / k
            M = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1.0)
            ker = cv2.warpAffine(ker, M, (k, k))
            ker /= max(ker.sum(), 1e-6)
            x = cv2.filter2D(x, -1, ker)
        if rng.random() < 0.3:
            x = x + rng.normal(0, rng.uniform(2, 12), x.shape).astype(np.float32)
        x = np.clip(x, 0, 255).astype(np.uint8)
        if rng.random() < 0.3:
            ok, enc = cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 90))])
            x = cv2.imdecode(enc, cv2.IMREAD_GRAYSCALE)
        return x

    def sample(self):
        rng, S = self.rng, self.S
        r = rng.random()
        if r < 0.4:
            canvas, quads = self._dashcam_canvas()
        elif r < 0.7:
            canvas, quads = self._dashcam_canvas() if rng.random() < 0.5 else (self._plain_canvas(), np.zeros((0, 4, 2), np.float32))
            for _ in range(int(rng.integers(1, 5))):
                canvas, quads = self._paste_roboflow(canvas, quads, big=False)
        else:
            canvas, quads = self._plain_canvas(), np.zeros((0, 4, 2), np.float32)
            canvas, quads = self._paste_roboflow(canvas, quads, big=True)
        # runtime pads right/bottom with zeros
        if rng.random() < 0.15:
            if rng.random() < 0.5:
                canvas[:, int(rng.uniform(0.5, 1.0) * S):] = 0
            else:
                canvas[int(rng.uniform(0.5, 1.0) * S):, :] = 0
        img = self.photometric(canvas)
        return img, quads


# ----------------------------------------------------------------------------- targets
def build_targets(quads, H, W):
    """Heatmap (1,h,w), geometry (8,h,w), geometry weight (1,h,w), scale norm (1,h,w) at stride 4."""
    h, w = H // STRIDE, W // STRIDE
    hm = np.zeros((h, w), np.float32)
    geo = np.zeros((8, h, w), np.float32)
    gw = np.zeros((h, w), np.float32)
    gs = np.ones((h, w), np.float32)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    for q in quads:
        qc = q / STRIDE
        c = qc.mean(0)
        if not (0 <= c[0] < w and 0 <= c[1] < h):
            continue
        x0, y0 = qc.min(0)
        x1, y1 = qc.max(0)
        bw, bh = x1 - x0, y1 - y0
        if bh * STRIDE < 3 or bw * STRIDE < 4:
            continue
        ci, cj = int(c[1]), int(c[0])
        sx = max(0.6, 0.12 * bw)
        sy = max(0.6, 0.12 * bh)
        pcx, pcy = cj + 0.5, ci + 0.5
        g = np.exp(-((xs + 0.5 - pcx) ** 2) / (2 * sx * sx) - ((ys + 0.5 - pcy) ** 2) / (2 * sy * sy))
        g[ci, cj] = 1.0
        hm = np.maximum(hm, g)
        sel = (g > 0.3) & (g >= gw)
        if not sel.any():
            continue
        rr, cc = np.nonzero(sel)
        for k in range(4):
            geo[2 * k, rr, cc] = qc[k, 0] - (cc + 0.5)
            geo[2 * k + 1, rr, cc] = qc[k, 1] - (rr + 0.5)
        gw[rr, cc] = g[rr, cc]
        gs[rr, cc] = max(1.0, 0.5 * float(np.sqrt(bw * bh)))
    return hm[None], geo, gw[None], gs[None]
