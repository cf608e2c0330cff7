"""Write detector eval CSVs (image,x,y,w,h,text) for the roboflow test split and the dashcam valid split, and the dev
CSV the models' settings are chosen on (roboflow valid and every 10th dashcam train frame, none of it trained on by
the detector)."""
import argparse
import csv
import glob
import os
import sys

DEFAULT_DATA = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "datasets"))


def polygon_box(nums, w, h):
    """YOLO box (cx cy w h) or polygon (x1 y1 ... xn yn, normalised) -> pixel x,y,w,h."""
    if len(nums) == 4:
        cx, cy, bw, bh = nums
        return (cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h
    n = len(nums) // 2 * 2
    xs = [nums[i] * w for i in range(0, n, 2)]
    ys = [nums[i] * h for i in range(1, n, 2)]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def image_size(path):
    from PIL import Image
    with Image.open(path) as im:
        return im.size


def roboflow_rows(data, split, out_dir):
    rows = []
    for img in sorted(glob.glob(os.path.join(data, "detect-roboflow-plates", split, "images", "*"))):
        lab = os.path.join(data, "detect-roboflow-plates", split, "labels", os.path.splitext(os.path.basename(img))[0] + ".txt")
        w, h = image_size(img)
        rel = os.path.relpath(img, out_dir)
        boxes = []
        if os.path.exists(lab):
            for line in open(lab):
                v = line.split()
                if len(v) >= 5:
                    boxes.append(polygon_box([float(t) for t in v[1:]], w, h))
        if not boxes:
            rows.append([rel, "", "", "", "", ""])
        for x, y, bw, bh in boxes:
            x0, y0 = max(0.0, x), max(0.0, y)
            x1, y1 = min(float(w), x + bw), min(float(h), y + bh)
            rows.append([rel, f"{x0:.1f}", f"{y0:.1f}", f"{x1 - x0:.1f}", f"{y1 - y0:.1f}", ""])
    return rows


def dashcam_rows(data, split, out_dir):
    root = os.path.join(data, "detect-dashcam-ro")
    rows = []
    with open(os.path.join(root, "labels.csv")) as f:
        for r in csv.DictReader(f):
            if not r["image"].startswith(split + "/"):
                continue
            rel = os.path.relpath(os.path.join(root, r["image"]), out_dir)
            rows.append([rel, r["x"], r["y"], r["w"], r["h"], ""])
    return rows


def write(path, rows):
    with open(path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["image", "x", "y", "w", "h", "text"])
        wr.writerows(rows)
    n_img = len({r[0] for r in rows})
    n_plate = sum(1 for r in rows if r[1] != "")
    print(f"{path}: {n_img} images, {n_plate} plates")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--data", default=DEFAULT_DATA, help="datasets root (default ../shared/datasets next to the repo)")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    data = os.path.abspath(args.data)
    if not os.path.isdir(data):
        sys.exit(f"datasets not found at {data}")
    write(os.path.join(out, "roboflow-test.csv"), roboflow_rows(data, "test", out))
    write(os.path.join(out, "dashcam-valid.csv"), dashcam_rows(data, "valid", out))
    frames = sorted({r[0] for r in dashcam_rows(data, "train", out)})
    dev_frames = set(frames[::10])
    write(os.path.join(out, "dev.csv"), roboflow_rows(data, "valid", out)
          + [r for r in dashcam_rows(data, "train", out) if r[0] in dev_frames])


if __name__ == "__main__":
    main()
