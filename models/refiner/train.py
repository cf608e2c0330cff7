"""Train the plate box refiner (python3 models/refiner/train.py --minutes 60 [--resume]) and export
models/plate_refiner.onnx from the best checkpoint by dev IoU."""
import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from samples import (Sampler, detector_boxes, load_all, load_real_crops, perturb, qbox, refined_quad,  # noqa: E402
                  warp_input)
from eval_detector import iou  # noqa: E402  (models/detector, put on the path by data)
from net import ONNX_OUT, PlateRefiner, count_macs, export_and_verify  # noqa: E402

# Corner errors in input-normalised units, weighted so that 1 unit is about one plate width (x) or height (y).
XY_WEIGHT = torch.tensor([1.6, 2.2] * 4)


def run_model(model, imgs):
    with torch.no_grad():
        c, p = model(torch.from_numpy(np.stack(imgs)[:, None].astype(np.float32) / 255.0))
    return c.numpy(), torch.sigmoid(p)[:, 0].numpy()


class Dev:
    """Dev sets (never trained on): roboflow *valid* through the real detector, real-plate-crops *valid* around
    perturbed boxes (fixed seed), and the detector's false detections on roboflow valid."""

    def __init__(self):
        from samples import load_roboflow
        self.rf = load_roboflow(["valid"])
        hits, misses = detector_boxes(self.rf)
        self.pairs = [(self.rf[i][0], self.rf[i][1][j], d) for i, j, d in hits]
        self.n_plates = sum(len(q) for _, q in self.rf)
        self.neg = [(self.rf[i][0], d) for i, d in misses]
        rng = np.random.default_rng(123)
        self.crops = [(g, q[0], perturb(rng, q[0])) for g, q in load_real_crops("valid")]

    @staticmethod
    def ious(model, pairs, passes=1):
        before, after = [], []
        for gray, q, d in pairs:
            gb = qbox(q)
            before.append(iou(gb, qbox(d)[None])[0])
            r = d
            for _ in range(passes):
                img, m = warp_input(gray, r)
                c, _ = run_model(model, [img])
                r = refined_quad(m, c[0])
            after.append(iou(gb, qbox(r)[None])[0])
        return np.array(before), np.array(after)

    def evaluate(self, model, passes=1):
        model.eval()
        b1, a1 = self.ious(model, self.pairs, passes)
        b2, a2 = self.ious(model, self.crops, passes)
        _, pp = run_model(model, [warp_input(g, d)[0] for g, _, d in self.pairs])
        _, pn = run_model(model, [warp_input(g, d)[0] for g, d in self.neg])
        model.train()
        # recall at IoU >= 0.7 counts each labelled plate once (its best detection)
        out = {
            "rf_det_iou70_before": (b1 >= 0.7).sum() / self.n_plates, "rf_det_iou70_after": (a1 >= 0.7).sum() / self.n_plates,
            "rf_det_mean_iou_before": b1.mean(), "rf_det_mean_iou_after": a1.mean(),
            "rpc_iou70_before": (b2 >= 0.7).mean(), "rpc_iou70_after": (a2 >= 0.7).mean(),
            "rpc_mean_iou_after": a2.mean(),
            "plate_keep_at_0.1": (pp >= 0.1).mean(), "false_drop_at_0.1": (pn < 0.1).mean(),
        }
        out["score"] = out["rf_det_mean_iou_after"] + out["rpc_mean_iou_after"]
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=60, help="wall-clock training budget (over all resumed runs)")
    ap.add_argument("--eval-every-minutes", type=float, default=5)
    ap.add_argument("--batch", type=int, default=96)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/platewatch/refiner"))
    ap.add_argument("--resume", action="store_true", help="continue from <cache>/state.pt")
    ap.add_argument("--out", default=ONNX_OUT)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.cache, exist_ok=True)
    state_path, best_path = os.path.join(args.cache, "state.pt"), os.path.join(args.cache, "best.pt")
    t0 = time.time()
    scenes = load_all("train")
    crops = load_real_crops("train")
    hits, misses = detector_boxes(scenes)
    print(f"data: {len(scenes)} scenes / {sum(len(q) for _, q in scenes)} plates, {len(crops)} real crops, "
          f"{len(hits)} detector hits, {len(misses)} detector false detections ({time.time() - t0:.0f}s)", flush=True)
    dev = Dev()
    print(f"dev: roboflow valid {dev.n_plates} plates, {len(dev.pairs)} detector hits, {len(dev.neg)} false detections, "
          f"{len(dev.crops)} rpc valid crops", flush=True)

    model = PlateRefiner()
    print(f"params {sum(p.numel() for p in model.parameters())}, {count_macs(model) / 1e6:.2f} MMAC", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    step, spent, best = 0, 0.0, -1.0
    if args.resume and os.path.exists(state_path):
        st = torch.load(state_path, weights_only=False)
        model.load_state_dict(st["model"]); opt.load_state_dict(st["opt"])
        step, spent, best = st["step"], st["spent"], st["best"]
        print(f"resumed at step {step}, {spent / 60:.1f} min spent, best {best:.4f}", flush=True)
    sampler = Sampler(crops, scenes, hits, misses, seed=args.seed + step)
    budget = args.minutes * 60
    start, last_eval, hist = time.time(), time.time(), []

    def checkpoint():
        nonlocal best
        r = dev.evaluate(model)
        print("  dev " + " ".join(f"{k}={v:.3f}" for k, v in r.items()), flush=True)
        if r["score"] > best:
            best = r["score"]
            torch.save(model.state_dict(), best_path)
            print(f"  new best {best:.4f}", flush=True)
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "spent": spent + time.time() - start, "best": best}, state_path)

    model.train()
    while spent + time.time() - start < budget:
        frac = (spent + time.time() - start) / budget
        lr = args.lr * min(1.0, (step + 1) / 300) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        x, t, p = sampler.batch(args.batch)
        x, t, p = torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(p)
        c, logit = model(x)
        err = F.smooth_l1_loss(c, t, reduction="none", beta=0.02) * XY_WEIGHT
        l_geo = (err.sum(1) * p).sum() / p.sum().clamp(min=1)
        l_cls = F.binary_cross_entropy_with_logits(logit[:, 0], p)
        loss = l_geo + 0.5 * l_cls
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        hist.append((l_geo.item(), l_cls.item()))
        if step % 100 == 0:
            h = np.mean(hist[-100:], 0)
            print(f"step {step} t={(spent + time.time() - start) / 60:.1f}min lr={lr:.2e} geo={h[0]:.4f} cls={h[1]:.4f}", flush=True)
        if time.time() - last_eval > args.eval_every_minutes * 60:
            last_eval = time.time()
            checkpoint()
    checkpoint()
    model.load_state_dict(torch.load(best_path))
    print("best checkpoint, 2 passes: " + " ".join(f"{k}={v:.3f}" for k, v in dev.evaluate(model, passes=2).items()))
    export_and_verify(model, os.path.normpath(args.out))
    print(f"done: {step} steps, {(spent + time.time() - start) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
