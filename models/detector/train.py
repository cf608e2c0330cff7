"""Train the plate detector for a fixed wall-clock budget (python3 models/detector/train.py --minutes 40), keep the best checkpoint, export ONNX."""
import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data import Augmenter, build_targets, load_dashcam, load_roboflow, roboflow_items, parse_yolo, dashcam_items  # noqa: E402
from eval_detector import run_eval  # noqa: E402
from export import export_and_verify  # noqa: E402
from model import PlateDetector  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ONNX_OUT = os.path.normpath(os.path.join(HERE, "..", "plate_detector.onnx"))


def focal_loss(logits, gt):
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = gt.eq(1).float()
    neg = 1 - pos
    lp = F.logsigmoid(logits)
    ln = F.logsigmoid(-logits)
    pos_l = -(pos * (1 - p) ** 2 * lp).sum()
    neg_l = -(neg * (1 - gt) ** 4 * p ** 2 * ln).sum()
    return (pos_l + neg_l) / pos.sum().clamp(min=1)


def dev_items():
    """Checkpoint-selection set: roboflow *valid* + every 10th dashcam *train* frame (not the eval sets)."""
    items = []
    for p, lab in roboflow_items("valid"):
        q = parse_yolo(lab, 300, 300)
        items.append((p, [(a[:, 0].min(), a[:, 1].min(), a[:, 0].max(), a[:, 1].max()) for a in q]))
    rf = list(items)
    dc = []
    for i, (p, bxs) in enumerate(dashcam_items("train")):
        if i % 10 == 0:
            dc.append((p, [(x, y, x + w, y + h) for x, y, w, h in bxs]))
    return rf, dc


def torch_runner(model):
    def run(x):
        with torch.no_grad():
            h, g = model(torch.from_numpy(x))
        return h[0, 0].numpy(), g[0].numpy()
    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=40)
    ap.add_argument("--early-export-minutes", type=float, default=15)
    ap.add_argument("--eval-every-minutes", type=float, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--ckpt-dir", default="/tmp/platewatch_detector")
    ap.add_argument("--out", default=ONNX_OUT)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    os.makedirs(args.ckpt_dir, exist_ok=True)
    t_start = time.time()
    budget = args.minutes * 60

    rf = load_roboflow(["train"])
    dc = load_dashcam("train", keep=lambda i: i % 10 != 0)
    print(f"loaded roboflow train {len(rf)} imgs / {sum(len(q) for _, q in rf)} plates, "
          f"dashcam train {len(dc)} frames / {sum(len(q) for _, q in dc)} plates in {time.time() - t_start:.0f}s", flush=True)
    dev_rf, dev_dc = dev_items()
    aug = Augmenter(rf, dc, size=args.size, seed=args.seed)

    model = PlateDetector()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    best, best_path = -1.0, os.path.join(args.ckpt_dir, "best.pt")
    early_done = False
    last_eval = time.time()
    step = 0
    hist = []
    warm = 200

    def evaluate():
        model.eval()
        r1, _ = run_eval(torch_runner(model), dev_rf, 640, 384, [0.3])
        r2, _ = run_eval(torch_runner(model), dev_dc, 640, 384, [0.3])
        r3, _ = run_eval(torch_runner(model), dev_dc, 800, 448, [0.3])
        model.train()
        a, b, c = r1[0.3], r2[0.3], r3[0.3]
        score = (a[0] + 0.5 * (b[0] + c[0])) / 2 + 0.1 * (a[1] + 0.5 * (b[1] + c[1])) / 2
        print(f"  dev rf-valid@640x384 R={a[0]:.3f} P={a[1]:.3f} | dc-dev@640x384 R={b[0]:.3f} P={b[1]:.3f} "
              f"| dc-dev@800x448 R={c[0]:.3f} P={c[1]:.3f} | score={score:.4f}", flush=True)
        return score

    model.train()
    while True:
        el = time.time() - t_start
        if el > budget:
            break
        frac = el / budget
        lr = args.lr * min(1.0, (step + 1) / warm) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        imgs, hms, geos, gws, gss = [], [], [], [], []
        for _ in range(args.batch):
            img, quads = aug.sample()
            hm, geo, gw, gs = build_targets(quads, args.size, args.size)
            imgs.append(img[None]); hms.append(hm); geos.append(geo); gws.append(gw); gss.append(gs)
        x = torch.from_numpy(np.stack(imgs).astype(np.float32) / 255.0)
        hm_t = torch.from_numpy(np.stack(hms))
        geo_t = torch.from_numpy(np.stack(geos))
        gw_t = torch.from_numpy(np.stack(gws))
        gs_t = torch.from_numpy(np.stack(gss))
        logits, geo = model(x, logits=True)
        l_hm = focal_loss(logits, hm_t)
        l_geo = (gw_t * (geo - geo_t).abs() / gs_t).sum() / (gw_t.sum() * 8).clamp(min=1) * 8
        loss = l_hm + l_geo
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        hist.append((l_hm.item(), l_geo.item()))
        if step % 50 == 0:
            h = np.mean(hist[-50:], 0)
            print(f"step {step} t={el / 60:.1f}min lr={lr:.2e} hm={h[0]:.3f} geo={h[1]:.3f}", flush=True)
        if time.time() - last_eval > args.eval_every_minutes * 60 or time.time() - t_start > budget:
            last_eval = time.time()
            s = evaluate()
            if s > best:
                best = s
                torch.save(model.state_dict(), best_path)
                print(f"  new best {s:.4f} saved", flush=True)
            if not early_done and time.time() - t_start > args.early_export_minutes * 60:
                m2 = PlateDetector()
                m2.load_state_dict(torch.load(best_path))
                export_and_verify(m2, args.out)
                early_done = True
                print(f"  EARLY ONNX exported to {args.out}", flush=True)
    s = evaluate()
    if s > best:
        best = s
        torch.save(model.state_dict(), best_path)
    torch.save(model.state_dict(), os.path.join(args.ckpt_dir, "last.pt"))
    m2 = PlateDetector()
    m2.load_state_dict(torch.load(best_path))
    export_and_verify(m2, args.out)
    print(f"done: {step} steps in {(time.time() - t_start) / 60:.1f} min, best dev score {best:.4f}, ONNX -> {args.out}", flush=True)


if __name__ == "__main__":
    main()
