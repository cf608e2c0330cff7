"""The detector's ONNX graph in the form the runtime wants: rewrites that keep every output the same
(no torch needed, so CI tests them)."""
import os
import tempfile

import numpy as np
import onnx
import onnx.helper
import onnx.utils
import onnxruntime as ort

GEOMETRY_FEATURES = "geometry_features"


def name_geometry_features(m):
    """Names the tensor the geometry head reads `geometry_features` (see CONTRACT.md), in place.

    The head (depthwise 3x3, 1x1, 1x1) sees a 3x3 neighbourhood of it, so Rust runs the head
    only on the patches around heatmap peaks instead of on every cell of the frame.
    """
    head = [n for n in m.graph.node if n.name == "/m/geo/geo.0/geo.0.0/Conv"]
    if not head:
        if any(GEOMETRY_FEATURES in n.output for n in m.graph.node):
            return m
        raise ValueError("no geometry head in this detector graph")
    old = head[0].input[0]
    for n in m.graph.node:
        for io in (n.input, n.output):
            for i, name in enumerate(io):
                if name == old:
                    io[i] = GEOMETRY_FEATURES
    return m


def subsample_strided_depthwise(m, min_channels=32):
    """Rewrites each stride-2 depthwise conv of at least `min_channels` channels as the same conv
    at stride 1 followed by MaxPool(kernel 1, stride 2), in place. The outputs are identical.

    tract 0.23 spends about ten times longer per output on a strided depthwise conv than on a
    stride-1 one, and it does not fold a kernel-1 MaxPool back into the conv: for 32-80 channels
    the pair costs about a third of the strided conv (per-node profile; `platewatch bench
    --detector` takes 1.5-2 ms off the detector). With the 16 channels at full resolution after
    the stem the pair costs more, so that conv stays strided.
    """
    new = []
    for n in m.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type == "Conv" and attrs.get("strides") == [2, 2] and attrs.get("group", 1) >= min_channels \
                and attrs.get("kernel_shape") == [3, 3] and attrs.get("pads") == [1, 1, 1, 1] \
                and attrs.get("dilations", [1, 1]) == [1, 1]:
            for a in n.attribute:
                if a.name == "strides":
                    a.ints[:] = [1, 1]
            out = n.output[0]
            n.output[0] = out + "_stride1"
            new.append(n)
            new.append(onnx.helper.make_node("MaxPool", [n.output[0]], [out], name=n.name + "_subsample",
                                             kernel_shape=[1, 1], strides=[2, 2]))
        else:
            new.append(n)
    del m.graph.node[:]
    m.graph.node.extend(new)
    return m


def finalize_onnx(m):
    """The runtime form of an exported detector graph (see the two rewrites above)."""
    return subsample_strided_depthwise(name_geometry_features(m))


def check_geometry_head(path, H=384, W=640, cells=64):
    """Checks the contract's local geometry head: the head run on the 3x3 patch of
    `geometry_features` around a cell (zeros beyond the edge) gives the dense `geometry` there."""
    parts = {}
    with tempfile.TemporaryDirectory() as d:
        for key, ins, outs in [("feat", ["image"], [GEOMETRY_FEATURES, "geometry"]),
                               ("head", [GEOMETRY_FEATURES], ["geometry"])]:
            out = os.path.join(d, f"{key}.onnx")
            onnx.utils.extract_model(path, out, ins, outs)
            parts[key] = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    x = rng.random((1, 1, H, W), dtype=np.float32)
    feat, dense = parts["feat"].run(None, {"image": x})
    padded = np.pad(feat, ((0, 0), (0, 0), (1, 1), (1, 1)))
    rows = np.concatenate([[0, H // 4 - 1], rng.integers(0, H // 4, cells - 2)])
    cols = np.concatenate([[0, W // 4 - 1], rng.integers(0, W // 4, cells - 2)])
    patches = np.stack([padded[0, :, r:r + 3, c:c + 3] for r, c in zip(rows, cols)])
    # The extracted head keeps the file's batch of 1: one patch per run.
    sparse = np.concatenate([parts["head"].run(None, {GEOMETRY_FEATURES: p[None]})[0] for p in patches])
    diff = np.abs(sparse[:, :, 1, 1] - dense[0][:, rows, cols].T).max()
    assert diff < 1e-4, f"the geometry head is not local to 3x3 patches of {GEOMETRY_FEATURES}: {diff}"
    return float(diff)


def finalize_file(path):
    """Brings an exported file to the runtime form in place, checking that no output changes."""
    rng = np.random.default_rng(1)
    xs = [rng.random((1, 1, H, W), dtype=np.float32) for H, W in [(384, 640), (64, 96)]]
    original = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    before = [original.run(["heatmap", "geometry"], {"image": x}) for x in xs]
    m = finalize_onnx(onnx.load(path))
    onnx.checker.check_model(m)
    tmp = path + ".tmp"
    onnx.save(m, tmp)
    sess = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
    diff = max(float(np.abs(a - b).max()) for x, outs in zip(xs, before)
               for a, b in zip(outs, sess.run(["heatmap", "geometry"], {"image": x})))
    assert diff < 1e-5, f"finalizing changed the outputs by {diff}"
    head = check_geometry_head(tmp)
    os.replace(tmp, path)
    print(f"{path}: finalized ({os.path.getsize(path)} bytes); outputs unchanged (max diff {diff:.1e}); "
          f"geometry head local to 3x3 {GEOMETRY_FEATURES} patches (max diff {head:.1e})")
