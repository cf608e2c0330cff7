"""Pack the main reader and second-opinion readers into one ONNX file (models/CONTRACT.md).

The file keeps the main model's interface (input `image`, outputs `chars`, `state` and `region`) and adds
each second model's character output as `chars_alt`, `chars_alt2`, ...; their state heads are left
out. The Rust reader builds two plans from the one file: `chars` + `state` for every read, and the
`chars_alt*` outputs for still images only (tract prunes what a plan's outputs do not need).

    python3 models/reader/combine.py --main /work/cache/reader/v4.onnx \
        --second /work/cache/reader/v6.onnx --out models/plate_reader.onnx

It checks that onnxruntime gives each output of the packed file exactly as the separate files do.
"""
import argparse

import numpy as np
import onnx


def alt_name(i):
    """The output name of the i-th (0-based) second opinion."""
    return "chars_alt" if i == 0 else "chars_alt%d" % (i + 1)


def needed_nodes(graph, outputs):
    """Nodes of `graph` that `outputs` depend on, in graph order."""
    producer = {o: i for i, n in enumerate(graph.node) for o in n.output}
    keep, todo = set(), list(outputs)
    while todo:
        t = todo.pop()
        i = producer.get(t)
        if i is None or i in keep:
            continue
        keep.add(i)
        todo.extend(graph.node[i].input)
    return [n for i, n in enumerate(graph.node) if i in keep]


def combine(main, *seconds):
    out = onnx.ModelProto()
    out.CopyFrom(main)
    for i, second in enumerate(seconds):
        add_second(out.graph, second.graph, alt_name(i))
    onnx.checker.check_model(out)
    return out


def add_second(g, g2, name):
    """Adds g2's `chars` to g as output `name`, its tensors and nodes prefixed with `name/`."""
    nodes = needed_nodes(g2, ["chars"])
    used = {t for n in nodes for t in n.input}
    prefix = name.replace("chars_", "") + "/"
    rename = lambda t: t if t in ("", "image") else (name if t == "chars" else prefix + t)  # noqa: E731
    for n in nodes:
        m = onnx.NodeProto()
        m.CopyFrom(n)
        m.name = prefix + n.name
        m.input[:] = [rename(t) for t in n.input]
        m.output[:] = [rename(t) for t in n.output]
        g.node.append(m)
    for init in g2.initializer:
        if init.name in used:
            t = onnx.TensorProto()
            t.CopyFrom(init)
            t.name = rename(init.name)
            g.initializer.append(t)
    chars = next(o for o in g2.output if o.name == "chars")
    alt = onnx.ValueInfoProto()
    alt.CopyFrom(chars)
    alt.name = name
    g.output.append(alt)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--main", required=True)
    ap.add_argument("--second", required=True, action="append", help="once per second opinion, in order")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    packed = combine(onnx.load(a.main), *[onnx.load(p) for p in a.second])
    onnx.save(packed, a.out)
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    run = lambda p: ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])  # noqa: E731
    x = np.random.default_rng(0).random((3, 1, 48, 160), dtype=np.float32)
    main_names = [o.name for o in onnx.load(a.main).graph.output]  # chars, state (and region)
    names = main_names + [alt_name(i) for i in range(len(a.second))]
    got = run(a.out).run(names, {"image": x})
    want = run(a.main).run(main_names, {"image": x})
    want += [run(p).run(["chars"], {"image": x})[0] for p in a.second]
    diff = max(np.abs(g - w).max() for g, w in zip(got, want))
    assert diff == 0.0, diff
    print("wrote %s (%d bytes): outputs %s; identical to the separate models"
          % (a.out, len(packed.SerializeToString()), ", ".join(names)))


if __name__ == "__main__":
    main()
