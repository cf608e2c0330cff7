"""Tests of the model tooling that need no torch: eval CSV conversion and the reader's shared pre/post-processing."""
import csv
import os
import subprocess
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, os.path.join(HERE, "..", "reader"))

import make_eval_csv  # noqa: E402
import common  # noqa: E402

sys.path.insert(0, os.path.join(HERE, "..", "detector"))
import onnx_form  # noqa: E402


def test_polygon_and_box_labels_become_pixel_boxes():
    assert make_eval_csv.polygon_box([0.5, 0.5, 0.2, 0.1], 300, 200) == (120.0, 90.0, 60.0, 20.0)
    x, y, w, h = make_eval_csv.polygon_box([0.1, 0.2, 0.5, 0.2, 0.5, 0.4, 0.1, 0.4, 0.1, 0.2], 100, 100)
    assert (round(x), round(y), round(w), round(h)) == (10, 20, 40, 20)


def test_make_eval_csv_writes_relative_paths(tmp_path):
    data = tmp_path / "datasets"
    imgs = data / "detect-roboflow-plates" / "test" / "images"
    labs = data / "detect-roboflow-plates" / "test" / "labels"
    imgs.mkdir(parents=True)
    labs.mkdir(parents=True)
    Image.new("RGB", (300, 300)).save(imgs / "a.jpg")
    (labs / "a.txt").write_text("0 0.5 0.5 0.2 0.1\n")
    Image.new("RGB", (300, 300)).save(imgs / "b.jpg")
    dash = data / "detect-dashcam-ro"
    (dash / "valid").mkdir(parents=True)
    Image.new("RGB", (1280, 720)).save(dash / "valid" / "c.jpg")
    (dash / "labels.csv").write_text("image,x,y,w,h\nvalid/c.jpg,10,20,30,8\n")
    out = tmp_path / "eval"
    subprocess.run([sys.executable, make_eval_csv.__file__, "--out", str(out), "--data", str(data)], check=True)
    rows = list(csv.DictReader(open(out / "roboflow-test.csv")))
    assert [r["image"] for r in rows] == [os.path.relpath(imgs / "a.jpg", out), os.path.relpath(imgs / "b.jpg", out)]
    assert float(rows[0]["w"]) == 60.0 and rows[1]["x"] == ""
    dash_rows = list(csv.DictReader(open(out / "dashcam-valid.csv")))
    assert dash_rows[0]["h"] == "8" or float(dash_rows[0]["h"]) == 8.0
    assert os.path.exists(os.path.join(out, dash_rows[0]["image"]))


def test_ctc_greedy_matches_the_rust_decoder_rules():
    probs = np.zeros((6, 37), np.float32)
    a = common.ALPHABET.index("A") + 1
    for t, (k, p) in enumerate([(a, 0.6), (a, 0.9), (0, 0.8), (a, 0.7), (2, 0.95), (0, 0.9)]):
        probs[t, k] = p
        probs[t, 1 if k == 0 else 0] = 1 - p
    text, conf = common.ctc_greedy(probs)
    assert text == "AA1"
    assert abs(conf - (0.9 + 0.7 + 0.95) / 3) < 1e-6


def test_stacked_layout_puts_top_line_left():
    img = np.zeros((96, 160), np.uint8)
    img[:48] = 200
    out = common.stack_halves(img)
    assert out.shape == (48, 160)
    assert out[:, :80].mean() == 200 and out[:, 80:].mean() == 0
    assert common.norm_text(" ab-12.c ") == "AB12C"


def test_vote_keeps_the_winning_texts_best_read_with_its_mean_confidence():
    text, conf, _ = common.vote([("AB12", 0.95, None), ("AB123", 0.6, None), ("AB123", 0.7, None)])
    assert text == "AB123" and abs(conf - 0.65) < 1e-9
    assert common.vote([("X1", 0.5, None), ("X2", 0.5, None)])[0] == "X1"  # a tie keeps the first read


def _tiny_reader(scale):
    """A stand-in reader with the contract's names: chars = GAP(image) * w, state = GAP(image)."""
    from onnx import TensorProto, helper
    g = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["image"], ["pooled"], name="gap"),
         helper.make_node("Mul", ["pooled", "w"], ["chars"], name="mul"),
         helper.make_node("Identity", ["pooled"], ["state"], name="id")],
        "reader",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 48, 160])],
        [helper.make_tensor_value_info("chars", TensorProto.FLOAT, ["N", 1, 1, 1]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, ["N", 1, 1, 1])],
        [helper.make_tensor("w", TensorProto.FLOAT, [1], [scale])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)


def test_combine_packs_a_second_opinion_without_its_state_head():
    import onnxruntime as ort
    import combine
    packed = combine.combine(_tiny_reader(2.0), _tiny_reader(3.0))
    assert [o.name for o in packed.graph.output] == ["chars", "state", "chars_alt"]
    assert not any(n.name == "alt/id" for n in packed.graph.node)  # the second state head is left out
    sess = ort.InferenceSession(packed.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.full((1, 1, 48, 160), 0.5, np.float32)
    chars, state, alt = sess.run(None, {"image": x})
    assert np.allclose(chars, 1.0) and np.allclose(state, 0.5) and np.allclose(alt, 1.5)


def test_combine_packs_several_second_opinions_in_order():
    import onnxruntime as ort
    import combine
    packed = combine.combine(_tiny_reader(2.0), _tiny_reader(3.0), _tiny_reader(5.0))
    assert [o.name for o in packed.graph.output] == ["chars", "state", "chars_alt", "chars_alt2"]
    sess = ort.InferenceSession(packed.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {"image": np.full((1, 1, 48, 160), 0.5, np.float32)})
    assert [round(float(o.ravel()[0]), 3) for o in outs] == [1.0, 0.5, 1.5, 2.5]


def test_shipped_reader_has_the_contract_outputs():
    import onnx
    m = onnx.load(os.path.join(HERE, "..", "plate_reader.onnx"))
    assert [i.name for i in m.graph.input] == ["image"]
    assert [o.name for o in m.graph.output][:2] == ["chars", "state"]


def tiny_detector(path, head_kernel=3):
    """A stride-4 graph shaped like the detector: strided depthwise convs, a heatmap head and a
    geometry head (named as the exporter names it) with a `head_kernel` depthwise conv."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(3)
    inits, nodes = [], []

    def conv(name, x, cin, cout, k, s, group=1, out=None):
        w = rng.normal(0, 0.3, (cout, cin // group, k, k)).astype(np.float32)
        b = rng.normal(0, 0.1, cout).astype(np.float32)
        inits.extend([numpy_helper.from_array(w, name + ".w"), numpy_helper.from_array(b, name + ".b")])
        out = out or name + "_out"
        nodes.append(helper.make_node("Conv", [x, name + ".w", name + ".b"], [out], name=name, group=group,
                                      kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4, dilations=[1, 1]))
        return out

    def relu(x):
        nodes.append(helper.make_node("Relu", [x], [x + "_relu"]))
        return x + "_relu"

    x = relu(conv("stem", "image", 1, 32, 3, 1))
    x = relu(conv("dw1", x, 32, 32, 3, 2, group=32))
    f = relu(conv("dw2", x, 32, 32, 3, 2, group=32))
    nodes.append(helper.make_node("Sigmoid", [conv("hm", f, 32, 1, 1, 1)], ["heatmap"]))
    g = relu(conv("/m/geo/geo.0/geo.0.0/Conv", f, 32, 32, head_kernel, 1, group=32))
    conv("geo_out", relu(conv("geo1", g, 32, 32, 1, 1)), 32, 8, 1, 1, out="geometry")
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, "H", "W"])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, c, "h", "w"]) for n, c in (("heatmap", 1), ("geometry", 8))],
        inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)


def test_finalizing_the_detector_keeps_its_outputs(tmp_path):
    import onnx
    path = str(tmp_path / "det.onnx")
    tiny_detector(path)
    onnx_form.finalize_file(path)  # asserts the outputs did not change and the head is local
    m = onnx.load(path)
    assert [n.op_type for n in m.graph.node].count("MaxPool") == 2
    assert any(onnx_form.GEOMETRY_FEATURES in n.output for n in m.graph.node)
    assert not any(n.op_type == "Conv" and [a for a in n.attribute if a.name == "strides" and list(a.ints) == [2, 2]]
                   for n in m.graph.node)


def test_a_geometry_head_wider_than_3x3_is_rejected(tmp_path):
    import onnx
    import pytest
    path = str(tmp_path / "det.onnx")
    tiny_detector(path, head_kernel=5)
    onnx.save(onnx_form.name_geometry_features(onnx.load(path)), path)
    with pytest.raises(AssertionError, match="not local"):
        onnx_form.check_geometry_head(path)


def test_shipped_detector_is_in_runtime_form():
    import onnx
    path = os.path.join(HERE, "..", "plate_detector.onnx")
    m = onnx.load(path)
    before = m.SerializeToString()
    assert onnx_form.finalize_onnx(m).SerializeToString() == before
    onnx_form.check_geometry_head(path)


sys.path.insert(0, os.path.join(HERE, "..", "refiner"))
import samples as refiner_samples  # noqa: E402


def test_refiner_targets_map_back_to_the_plate():
    """The corners a refiner sample is trained to output, mapped back as Rust maps them, are the plate's corners."""
    rng = np.random.default_rng(5)
    gray = rng.integers(0, 255, (200, 300), dtype=np.uint8)
    plate = np.float32([[100, 80], [200, 84], [198, 120], [98, 116]])
    for _ in range(20):
        det = refiner_samples.perturb(rng, plate)
        img, m = refiner_samples.warp_input(gray, det)
        assert img.shape == (refiner_samples.IN_H, refiner_samples.IN_W)
        target = refiner_samples.apply_h(m, plate[None])[0] / [refiner_samples.IN_W, refiner_samples.IN_H]
        back = refiner_samples.refined_quad(m, target.reshape(8))
        assert np.abs(back - plate).max() < 1e-2


def test_shipped_refiner_tightens_loose_boxes_on_real_plates():
    """On 60 real-plate-crops `valid` plates (never trained on) around detector-like loose boxes, the shipped refiner's
    corners overlap the labelled plate better than the loose box does, and it calls them plates."""
    import onnxruntime as ort
    root = os.path.join(refiner_samples.DATA_ROOT, "real-plate-crops")
    if not os.path.isdir(root):
        import pytest
        pytest.skip("datasets not present")
    sess = ort.InferenceSession(os.path.join(HERE, "..", "plate_refiner.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["crop"]
    assert [o.name for o in sess.get_outputs()] == ["corners", "plate"]
    rng = np.random.default_rng(11)
    rows = [r for r in csv.DictReader(open(os.path.join(root, "crops.csv"))) if r["split"] == "valid"][:60]
    before, after, plate_p = [], [], []
    for r in rows:
        gray = refiner_samples.load_gray(os.path.join(root, r["image"]))
        x, y, w, h = (float(r[k]) for k in ("plate_x", "plate_y", "plate_w", "plate_h"))
        gt = refiner_samples.box_quad(x, y, x + w, y + h)
        det = refiner_samples.perturb(rng, gt)
        img, m = refiner_samples.warp_input(gray, det)
        corners, p = sess.run(None, {"crop": img[None, None].astype(np.float32) / 255.0})
        assert corners.shape == (1, 8) and p.shape == (1, 1)
        gb = refiner_samples.qbox(gt)
        before.append(refiner_samples.iou(gb, refiner_samples.qbox(det)[None])[0])
        after.append(refiner_samples.iou(gb, refiner_samples.qbox(refiner_samples.refined_quad(m, corners[0]))[None])[0])
        plate_p.append(float(p[0, 0]))
    before, after = np.array(before), np.array(after)
    assert after.mean() > before.mean() + 0.1, (before.mean(), after.mean())
    assert (after >= 0.7).mean() > (before >= 0.7).mean() + 0.2
    assert np.mean(np.array(plate_p) > 0.5) > 0.9
