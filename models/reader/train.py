"""Train the plate reader (CTC + state head) on teacher-agreed real plates + synthetic plates, then export ONNX.

One command (time-budgeted; keeps an exponential moving average (EMA) of the weights, exports an
early ONNX after --early-export-min minutes of training and the final ONNX at the end):

    python3 models/reader/train.py --out /work/cache/reader/v9.onnx     # --minutes 70 is the default

Real plates come from models/reader/labels/real_labels.csv (label_real.py: the plates two teachers read
alike; images read from ../shared/datasets and packed into memory once). The held-out set is
real-plate-crops' `valid` split. Neither scenes-dev nor ocr-us-crops is ever read here.

Resumable: every evaluation writes `<cache>/<ckpt>.state` (weights, EMA, optimiser, step, elapsed
time); `--resume` continues the same cosine schedule from it, so a run can span sessions.
The exported model is the EMA at the end of the schedule (`--select final`, the default) or the EMA
checkpoint with the best held-out score (`--select best`).
"""
import copy
import argparse
import csv
import math
import os
import sys
import time

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import IN_H, IN_W, REGION_INDEX, STATE_INDEX, ctc_greedy, encode, expand_quad  # noqa: E402
from model import N_REGIONS, Exported, Reader, count_macs  # noqa: E402
import synth  # noqa: E402

REPO_ONNX = os.path.join(HERE, "..", "plate_reader.onnx")


LABELS = os.path.join(HERE, "labels", "real_labels.csv")
DATA = os.environ.get("PLATE_DATA", os.path.join(HERE, "..", "..", "..", "shared", "datasets"))


# A real plate's region label is the cct teacher's region when it is at least this sure (else none).
REGION_SURE = 0.8


def load_real(path=LABELS, data=DATA, margin=0.25):
    """Teacher-agreed plates as packed context crops: (train, held_out) lists of dicts with `img` (gray uint8,
    the plate box plus `margin` of its size on each side), `quad` (in crop pixels), `text`, `state`."""
    rows = list(csv.DictReader(open(path)))
    train, hold = [], []
    img, img_path = None, None
    for r in sorted(rows, key=lambda r: r["image"]):
        p = os.path.join(data, r["image"])
        if p != img_path:
            img, img_path = cv2.imread(p, cv2.IMREAD_GRAYSCALE), p
        if img is None:
            raise SystemExit("cannot read %s (is ../shared/datasets beside the repo?)" % p)
        q = np.float32(r["quad"].split()).reshape(4, 2)
        (x0, y0), (x1, y1) = q.min(0), q.max(0)
        mx, my = margin * (x1 - x0), margin * (y1 - y0)
        cx0, cy0 = int(max(0, x0 - mx)), int(max(0, y0 - my))
        cx1, cy1 = int(min(img.shape[1], x1 + mx + 1)), int(min(img.shape[0], y1 + my + 1))
        region = REGION_INDEX.get(r["region"], -100) if float(r["region_prob"] or 0) >= REGION_SURE else -100
        item = dict(img=np.ascontiguousarray(img[cy0:cy1, cx0:cx1]), quad=q - np.float32([cx0, cy0]),
                    text=r["text"], state=r["state"], region=region, src=r["source"], key=r["key"])
        if r["split"] != "valid":
            train.append(item)
        elif r.get("rule", "agree") == "agree":  # the reader's bar: plates both teachers read alike
            hold.append(item)
    return train, hold


def real_sample(rng, r, augment=True):
    """Warp a real plate like the Rust side does (line layout): random margins and corner jitter, so the reader
    learns crops cut loosely or tightly, as our detector cuts them."""
    img = r["img"]
    q = np.float32(r["quad"])
    if augment:
        w = np.linalg.norm(q[1] - q[0])
        h = np.linalg.norm(q[3] - q[0])
        q = q + rng.normal(0, 1, q.shape).astype(np.float32) * np.float32([w, h]) * rng.uniform(0, 0.04)
        ex, ey = rng.uniform(-0.03, 0.18), rng.uniform(-0.05, 0.25)
    else:
        ex, ey = 0.06, 0.10
    qq = expand_quad(q, ex, ey)
    dst = np.float32([[0, 0], [IN_W, 0], [IN_W, IN_H], [0, IN_H]])
    m = cv2.getPerspectiveTransform(qq, dst)
    out = cv2.warpPerspective(img, m, (IN_W, IN_H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if augment:
        f = out.astype(np.float32) / 255.0
        if rng.random() < 0.5:
            f = np.clip((f - 0.5) * rng.uniform(0.6, 1.3) + 0.5 + rng.uniform(-0.15, 0.15), 0, 1)
            f = f ** rng.uniform(0.7, 1.4)
        if rng.random() < 0.1:
            f = 1.0 - f  # light-on-dark plates and IR captures
        if rng.random() < 0.25:  # low resolution
            s = rng.uniform(0.25, 0.7)
            f = cv2.resize(cv2.resize(f, (int(IN_W * s), int(IN_H * s)), interpolation=cv2.INTER_AREA),
                           (IN_W, IN_H), interpolation=cv2.INTER_LINEAR)
        out = synth.finish(rng, f) if rng.random() < 0.5 else np.clip(f * 255, 0, 255).astype(np.uint8)
    st = STATE_INDEX.get(r["state"], -100) if r["state"] else -100
    return out, r["text"], st, r["region"]


MAX_LEN = 16


class Ring:
    """Shared-memory ring buffer of rendered samples, filled by ONE renderer process while the trainer runs.

    Rendering (Python/PIL/OpenCV, ~5-6 ms a sample) and the training step run in parallel on the two cores,
    and neither waits for the other: every rendered sample is used at least once, and when the trainer is
    faster than the renderer the rest of each batch is drawn from the most recent `cap` samples (so a sample
    is seen ~1-2 times on average, each time as the same image). When the renderer is `ahead` samples in
    front of the trainer it sleeps, so it only takes the CPU the trainer needs."""

    def __init__(self, cap, ahead=3000):
        import multiprocessing as mp
        self.cap, self.ahead = cap, ahead
        self.img = mp.RawArray("B", cap * IN_H * IN_W)
        self.lab = mp.RawArray("b", cap * MAX_LEN)
        self.len = mp.RawArray("b", cap)
        self.st = mp.RawArray("h", cap)
        self.rg = mp.RawArray("h", cap)
        self.n = mp.RawValue("q", 0)
        self.used = mp.RawValue("q", 0)  # samples the trainer has taken fresh (renderer throttle)
        self.consumed = 0

    def views(self):
        return (np.frombuffer(self.img, np.uint8).reshape(self.cap, IN_H, IN_W),
                np.frombuffer(self.lab, np.int8).reshape(self.cap, MAX_LEN),
                np.frombuffer(self.len, np.int8), np.frombuffer(self.st, np.int16), np.frombuffer(self.rg, np.int16))

    def render_loop(self, teacher, real_frac, seed):
        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        rng = np.random.default_rng(seed)
        img, lab, lens, sts, rgs = self.views()
        while True:
            if self.n.value - self.used.value > self.ahead:
                time.sleep(0.02)  # far enough ahead: leave the core to the trainer (and the other jobs)
                continue
            if teacher and rng.random() < real_frac:
                x, t, s, g = real_sample(rng, teacher[rng.integers(len(teacher))])
            else:
                x, t, s, _, g = synth.make_sample(rng)
                g = REGION_INDEX[g] if g else -100
            t = t[:MAX_LEN]
            i = self.n.value % self.cap
            img[i] = x
            lab[i, :len(t)] = encode(t)
            lens[i] = len(t)
            sts[i] = s
            rgs[i] = g
            self.n.value += 1

    def batch(self, b):
        img, lab, lens, sts, rgs = self.views()
        while self.n.value < 4 * b:
            time.sleep(0.05)
        n = self.n.value
        lo = max(0, n - self.cap + 512)  # keep clear of the slots the renderer is about to overwrite
        self.consumed = max(self.consumed, lo)
        k = min(b, n - self.consumed)
        fresh = np.arange(self.consumed, self.consumed + k)
        self.consumed += k
        self.used.value = self.consumed
        idx = np.concatenate([fresh, np.random.randint(lo, n, b - k)]) % self.cap
        x = torch.from_numpy(img[idx].astype(np.float32) / 255.0).unsqueeze(1)
        ln = torch.from_numpy(lens[idx].astype(np.int64))
        tg = torch.from_numpy(np.concatenate([lab[i, :lens[i]] for i in idx]).astype(np.int64))
        return (x, tg, ln, torch.from_numpy(sts[idx].astype(np.int64)), torch.from_numpy(rgs[idx].astype(np.int64)),
                int(k))


def evaluate(net, x, texts, states, regions):
    """-> (exact rate, state rate, region rate) of `net` on a fixed set (rates over the labelled samples)."""
    net.eval()
    with torch.no_grad():
        c, s, g = net(x)
        p = torch.softmax(c, -1).numpy()
        sp = s.argmax(1).numpy()
        gp = g.argmax(1).numpy()
    net.train()
    ok = sum(ctc_greedy(p[i])[0] == texts[i] for i in range(len(texts)))
    sv = [(sp[i] == states[i]) for i in range(len(texts)) if states[i] >= 0]
    gv = [(gp[i] == regions[i]) for i in range(len(texts)) if regions[i] >= 0]
    return (ok / max(1, len(texts)), (float(np.mean(sv)) if sv else float("nan")),
            (float(np.mean(gv)) if gv else float("nan")))


def export_onnx(net, path):
    import onnx
    net = net.cpu().eval()
    wrap = Exported(net).eval()
    x = torch.rand(2, 1, IN_H, IN_W)
    tmp = path + ".tmp"
    torch.onnx.export(wrap, (x,), tmp, input_names=["image"], output_names=["chars", "state", "region"],
                      dynamic_axes={"image": {0: "N"}, "chars": {0: "N"}, "state": {0: "N"}, "region": {0: "N"}},
                      opset_version=13, do_constant_folding=True, dynamo=False)
    m = onnx.load(tmp)
    # pin the static output dims (the exporter leaves symbolic names for T and classes)
    for o, dims in zip(m.graph.output, ((40, 37), (52,), (N_REGIONS,))):
        for d, v in zip(o.type.tensor_type.shape.dim[1:], dims):
            d.ClearField("dim_param")
            d.dim_value = v
    onnx.checker.check_model(m)
    onnx.save(m, tmp)
    ops = sorted({n.op_type for n in m.graph.node})
    import onnxruntime as ort
    sess = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
    xt = torch.rand(3, 1, IN_H, IN_W)
    outs = sess.run(None, {"image": xt.numpy()})
    with torch.no_grad():
        ref = wrap(xt)
    err = max(float(np.abs(o - t.numpy()).max()) for o, t in zip(outs, ref))
    shapes = [o.shape for o in outs]
    assert shapes == [(3, 40, 37), (3, 52), (3, N_REGIONS)], shapes
    assert err < 1e-4, err
    os.replace(tmp, path)
    print("exported %s (%d bytes) ops=%s max|ort-torch|=%.2e" % (path, os.path.getsize(path), ops, err), flush=True)
    return ops, err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=70)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--real-frac", type=float, default=0.6)
    ap.add_argument("--labels", default=LABELS, help="teacher-agreed real plates (label_real.py)")
    ap.add_argument("--resume", action="store_true", help="continue from <cache>/<ckpt>.state")
    ap.add_argument("--early-export-min", type=float, default=15)
    ap.add_argument("--eval-every", type=float, default=120, help="seconds")
    ap.add_argument("--cache", default="/work/cache/reader")
    ap.add_argument("--out", default=REPO_ONNX)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", default="", help="optional checkpoint to start from (fine-tuning)")
    ap.add_argument("--ckpt", default="reader_best.pt", help="checkpoint file name inside --cache")
    ap.add_argument("--ring", type=int, default=20000, help="samples kept in the shared render ring buffer")
    ap.add_argument("--state-w", type=float, default=0.5, help="weight of the state cross-entropy")
    ap.add_argument("--region-w", type=float, default=0.3, help="weight of the region cross-entropy")
    ap.add_argument("--edge-serials", type=float, default=synth.EDGE_SERIALS,
                    help="share of US serials drawn edge to edge (0 reproduces reader v4's data, 0.35 is v6's)")
    ap.add_argument("--bar-ones", type=float, default=0.4,
                    help="share of serials whose 1 is a plain bar (0 reproduces v6 and before)")
    ap.add_argument("--mono-serials", type=float, default=0.4,
                    help="share of serials drawn monospaced (0 reproduces v6 and before)")
    ap.add_argument("--ema", type=float, default=0.999, help="decay of the weights' moving average")
    ap.add_argument("--select", choices=["final", "best"], default="final",
                    help="export the final EMA weights, or the EMA checkpoint with the best held-out score")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    torch.manual_seed(args.seed)
    teacher, hold = load_real(args.labels)
    print("real plates: train %d, held-out %d (real-plate-crops valid)" % (len(teacher), len(hold)), flush=True)
    # fixed validation sets (not ocr-us-crops)
    rng = np.random.default_rng(12345)
    sv = [synth.make_sample(rng) for _ in range(400)]
    sx = torch.from_numpy(np.stack([s[0] for s in sv])).float().div(255).unsqueeze(1)
    sv = [(s[0], s[1], s[2], REGION_INDEX[s[4]] if s[4] else -100) for s in sv]
    hv = [real_sample(rng, r, augment=False) for r in hold]
    hx = torch.from_numpy(np.stack([h[0] for h in hv])).float().div(255).unsqueeze(1) if hv else None

    net = Reader()
    if args.init:
        missing, _ = net.load_state_dict(torch.load(args.init), strict=False)
        if missing:
            print("--init: new layers start from scratch: %s" % ", ".join(missing), flush=True)
    print("params %d, MACs %.1fM (%.1f MFLOPs)" % (sum(p.numel() for p in net.parameters()),
                                                 count_macs(net) / 1e6, 2 * count_macs(net) / 1e6), flush=True)
    net = net.to(memory_format=torch.channels_last)  # ~1.5x faster conv training on CPU
    net.train()
    ema = copy.deepcopy(net)  # evaluated and exported; `net` is what the optimiser moves
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    import multiprocessing as mp
    synth.EDGE_SERIALS = args.edge_serials  # before the renderer process forks
    synth.BAR_ONES = args.bar_ones
    synth.MONO_SERIALS = args.mono_serials
    ring = Ring(args.ring)
    proc = mp.get_context("fork").Process(target=ring.render_loop, args=(teacher, args.real_frac, args.seed + 1),
                                          daemon=True)
    proc.start()
    budget = args.minutes * 60
    ckpt = os.path.join(args.cache, args.ckpt)
    state_path = ckpt + ".state"
    os.makedirs(args.cache, exist_ok=True)
    t0 = time.time()
    last_eval, early_done, step, best, fresh_total = t0, False, 0, -1.0, 0
    if args.resume:
        if not os.path.exists(state_path):
            raise SystemExit("--resume: no %s" % state_path)
        st_ = torch.load(state_path)
        net.load_state_dict(st_["net"])
        ema.load_state_dict(st_["ema"])
        opt.load_state_dict(st_["opt"])
        step, best = st_["step"], st_["best"]
        t0 -= st_["elapsed"]  # the schedule continues where it stopped
        early_done = st_["elapsed"] >= args.early_export_min * 60
        print("resumed at step %d, %.1f of %.1f min" % (step, st_["elapsed"] / 60, args.minutes), flush=True)
    run_loss = None
    while True:
        x, tg, ln, st, rg, k = ring.batch(args.batch)
        fresh_total += k
        x = x.contiguous(memory_format=torch.channels_last)
        el = time.time() - t0
        frac = min(1.0, el / budget)
        lr = args.lr * (min(1.0, step / 300) * 0.5 * (1 + math.cos(math.pi * frac)) + 0.01)
        for g in opt.param_groups:
            g["lr"] = lr
        c, s, g = net(x)
        lp = F.log_softmax(c, -1).transpose(0, 1)  # [T,N,C]
        loss = ctc(lp, tg, torch.full((x.shape[0],), c.shape[1], dtype=torch.long), ln)
        if (st >= 0).any():
            loss = loss + args.state_w * F.cross_entropy(s, st, ignore_index=-100)
        if (rg >= 0).any():
            loss = loss + args.region_w * F.cross_entropy(g, rg, ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        step += 1
        with torch.no_grad():
            d = min(args.ema, (1 + step) / (10 + step))
            for pe, pn in zip(ema.parameters(), net.parameters()):
                pe.mul_(d).add_(pn.detach(), alpha=1 - d)
            for be, bn in zip(ema.buffers(), net.buffers()):
                be.copy_(bn)
        run_loss = loss.item() if run_loss is None else 0.98 * run_loss + 0.02 * loss.item()
        now = time.time()
        done = now - t0 >= budget
        if now - last_eval >= args.eval_every or done:
            last_eval = now
            sa, ss_, sg = evaluate(ema, sx, [s[1] for s in sv], [s[2] for s in sv], [s[3] for s in sv])
            ha, hs, hg = (evaluate(ema, hx, [h[1] for h in hv], [h[2] for h in hv], [h[3] for h in hv]) if hv
                          else (0.0, float("nan"), float("nan")))
            score = 0.5 * sa + 0.5 * ha
            tag = ""
            if score > best:
                best = score
                torch.save(ema.state_dict(), ckpt)
                tag = " *best"
            torch.save(dict(net=net.state_dict(), ema=ema.state_dict(), opt=opt.state_dict(), step=step,
                            best=best, elapsed=now - t0), state_path + ".tmp")
            os.replace(state_path + ".tmp", state_path)
            el = now - t0
            print("%5.1f min step %d lr %.2e loss %.3f | synth exact %.3f state %.3f region %.3f | held-out real "
                  "exact %.3f state %.3f region %.3f | trained %.0f/s, rendered %.0f/s%s"
                  % (el / 60, step, lr, run_loss, sa, ss_, sg, ha, hs, hg, step * args.batch / el,
                     ring.n.value / el, tag), flush=True)
            if not early_done and now - t0 >= args.early_export_min * 60:
                early_done = True
                tmp = Reader()
                tmp.load_state_dict(torch.load(ckpt))
                export_onnx(tmp, args.out)
        if done:
            break
    proc.terminate()
    print("rendered %d distinct samples, %d used fresh" % (ring.n.value, fresh_total))
    print("trained %.1f min, %d steps, %d samples" % ((time.time() - t0) / 60, step, step * args.batch))
    final = os.path.join(args.cache, "final_" + args.ckpt)
    torch.save(ema.state_dict(), final)
    net = Reader()
    net.load_state_dict(torch.load(ckpt if args.select == "best" else final))
    print("exporting the %s EMA weights" % args.select, flush=True)
    export_onnx(net, args.out)


if __name__ == "__main__":
    main()
