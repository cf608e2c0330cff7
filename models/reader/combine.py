"""Pack the main reader and a second-opinion reader into one ONNX file (models/CONTRACT.md).

The file keeps the main model's interface (input `image`, outputs `chars` and `state`) and adds
the second model's character output as `chars_alt`; the second model's state head is left out.
The Rust reader builds two plans from the one file: `chars` + `state` for every read, and
`chars_alt` only when a read is uncertain (tract prunes what a plan's outputs do not need).

    python3 models/reader/combine.py --main /work/cache/reader/v4.onnx \
        --second /work/cache/reader/v6.onnx --out models/plate_reader.onnx

It checks that onnxruntime gives each output of the packed file exactly as the separate files do.
"""
import argparse

import numpy as np
import onnx

PREFIX = "alt/"


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


def combine(main, second):
    g2 = second.graph
    nodes = needed_nodes(g2, ["chars"])
    used = {t for n in nodes for t in n.input}
    rename = lambda t: t if t in ("", "image") else ("chars_alt" if t == "chars" else PREFIX + t)  # noqa: E731
    out = onnx.ModelProto()
    out.CopyFrom(main)
    g = out.graph
    for n in nodes:
        m = onnx.NodeProto()
        m.CopyFrom(n)
        m.name = PREFIX + n.name
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
    alt.name = "chars_alt"
    g.output.append(alt)
    onnx.checker.check_model(out)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--main", required=True)
    ap.add_argument("--second", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    packed = combine(onnx.load(a.main), onnx.load(a.second))
    onnx.save(packed, a.out)
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    run = lambda p: ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])  # noqa: E731
    x = np.random.default_rng(0).random((3, 1, 48, 160), dtype=np.float32)
    chars, state, alt = run(a.out).run(["chars", "state", "chars_alt"], {"image": x})
    c1, s1 = run(a.main).run(["chars", "state"], {"image": x})
    (c2,) = run(a.second).run(["chars"], {"image": x})
    diff = max(np.abs(chars - c1).max(), np.abs(state - s1).max(), np.abs(alt - c2).max())
    assert diff == 0.0, diff
    print("wrote %s (%d bytes): outputs chars, state, chars_alt; identical to the separate models"
          % (a.out, len(packed.SerializeToString())))


if __name__ == "__main__":
    main()
