"""Write the wavelet post-filter's convolutions as an ONNX graph, the torch-free decoder's copy of them.

    python -m facecodec.train.postfilter_onnx wavelet-v1 wavelet-v2 wavelet-v3 [--weights-dir weights]

Every export of wavelet weights with a post-filter calls ``graph_fields`` (through
facecodec.train.export.record_in_manifest), so the graph is always written from the weights file's own
arrays; the command above rewrites it for weights already installed. The graph is built node by node
with ``onnx.helper`` (no torch exporter), as facecodec.models.postfilter_onnx documents it: the inputs
``h`` and ``bias0..``, the output ``residual``. The fp16 weights are stored as float32, so ONNX Runtime
computes what torch computes from the same file (to float rounding).
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
from safetensors.numpy import load as load_safetensors

PREFIX = "postfilter."
OPSET = 17


def graph_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The post-filter's arrays (``postfilter.convs.K.weight`` / ``.bias``) -> a serialised ONNX model."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    layers = sum(1 for name in arrays if name.startswith(PREFIX + "convs.") and name.endswith(".weight"))
    hidden = arrays[PREFIX + "convs.0.weight"].shape[0]
    inputs = [helper.make_tensor_value_info("h", TensorProto.FLOAT, ["n", 12, "height", "width"])]
    inputs += [helper.make_tensor_value_info(f"bias{i}", TensorProto.FLOAT, ["n", hidden, 1, 1])
               for i in range(layers - 1)]
    output = helper.make_tensor_value_info("residual", TensorProto.FLOAT, ["n", 12, "height", "width"])
    nodes, initializers, current = [], [], "h"
    for i in range(layers):
        weight, bias = (f"{PREFIX}convs.{i}.weight", f"{PREFIX}convs.{i}.bias")
        initializers += [numpy_helper.from_array(arrays[name].astype(np.float32), name) for name in (weight, bias)]
        conv = "residual" if i == layers - 1 else f"conv{i}"
        nodes.append(helper.make_node("Conv", [current, weight, bias], [conv], kernel_shape=[3, 3],
                                      pads=[1, 1, 1, 1]))
        if i < layers - 1:
            nodes.append(helper.make_node("Add", [conv, f"bias{i}"], [f"conditioned{i}"]))
            nodes.append(helper.make_node("Relu", [f"conditioned{i}"], [f"hidden{i}"]))
            current = f"hidden{i}"
    graph = helper.make_graph(nodes, "facecodec_postfilter", inputs, [output], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="facecodec")
    model.ir_version = 8  # what ONNX Runtime releases of the last years all read
    onnx.checker.check_model(model)
    return model.SerializeToString()


def graph_fields(weights_dir: Path, entry: dict) -> dict:
    """For wavelet weights with a post-filter: write ``postfilter-HASH.onnx`` beside the weights file -> the manifest
    field naming it (``postfilter_graph``: file and SHA-256); {} for any other weights."""
    if entry.get("family") != "wavelet" or not entry.get("model", {}).get("postfilter_layers"):
        return {}
    arrays = load_safetensors((Path(weights_dir) / entry["file"]).read_bytes())
    blob = graph_bytes({name: array for name, array in arrays.items() if name.startswith(PREFIX)})
    digest = hashlib.sha256(blob).hexdigest()
    file = f"postfilter-{digest[:16]}.onnx"   # named by content: weights that share a filter share the file
    (Path(weights_dir) / file).write_bytes(blob)
    return {"postfilter_graph": {"file": file, "sha256": digest}}


def main(argv: list[str] | None = None) -> None:
    from facecodec.train.cards import installed_entry
    from facecodec.train.config import DEFAULT_WEIGHTS_DIR
    from facecodec.train.export import record_in_manifest

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights_ids", nargs="+", metavar="ID", help="installed wavelet weights with a post-filter")
    parser.add_argument("--weights-dir", type=Path, default=Path(DEFAULT_WEIGHTS_DIR))
    args = parser.parse_args(argv)
    for weights_id in args.weights_ids:
        manifest = record_in_manifest(args.weights_dir, installed_entry(weights_id))
        print(f"{weights_id}: wrote its post-filter graph and {manifest}")


if __name__ == "__main__":
    main()
