#!/usr/bin/env python3
"""Small ONNX emotion classifiers in the published layouts of third-party models, for the tests
of `emotion-train wrap` (seeded random weights; only the interfaces matter).

    models.py make OUTDIR          writes the models below into OUTDIR
    models.py run MODEL INPUT.f32  prints the model's output for one NCHW float32 input (JSON),
                                   run by onnxruntime

* ferplus8.onnx: the ONNX Model Zoo's emotion-ferplus-8 interface: input `Input3`
  [1, 1, 64, 64] (raw grey 0..255), output `Plus692_Output_0` [1, 8] logits in FER+ order
  (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt); opset 8 and IR 3
  with the initializers also listed as graph inputs, as that model has them.
* affectnet8.onnx: a 3-channel 224x224 AffectNet classifier: input `input` [N, 3, 224, 224]
  (RGB, ImageNet mean/std), output `probs` [N, 8] after a Softmax, AffectNet order (neutral,
  happy, sad, surprise, fear, disgust, anger, contempt); opset 13.
* five.onnx: like ferplus8 but with 5 outputs (must be refused).
"""
import json
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def init(name, array):
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def classifier(path, input_name, shape, output_name, classes, softmax, opset, ir, inits_as_inputs, seed):
    rng = np.random.default_rng(seed)
    c = shape[1]
    inits = [
        init("conv_w", rng.normal(0, 0.5, (8, c, 3, 3))),
        init("conv_b", rng.normal(0, 0.1, (8,))),
        init("fc_w", rng.normal(0, 1.0, (classes, 8))),
        init("fc_b", rng.normal(0, 0.1, (classes,))),
    ]
    stride = 4 if shape[2] > 100 else 2
    nodes = [
        helper.make_node("Conv", [input_name, "conv_w", "conv_b"], ["c1"], kernel_shape=[3, 3],
                         strides=[stride, stride], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("GlobalAveragePool", ["r1"], ["g1"]),
        helper.make_node("Flatten", ["g1"], ["f1"], axis=1),
        helper.make_node("Gemm", ["f1", "fc_w", "fc_b"], ["logits" if softmax else output_name],
                         transB=1),
    ]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], [output_name], axis=1))
    inputs = [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, shape)]
    if inits_as_inputs:
        inputs += [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.dims)) for t in inits]
    out_shape = [shape[0], classes]
    graph = helper.make_graph(nodes, "classifier", inputs,
                              [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, out_shape)],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir
    onnx.checker.check_model(model)
    onnx.save(model, path)


def main():
    if sys.argv[1] == "make":
        out = sys.argv[2]
        classifier(f"{out}/ferplus8.onnx", "Input3", [1, 1, 64, 64], "Plus692_Output_0", 8,
                   False, 8, 3, True, 1)
        classifier(f"{out}/affectnet8.onnx", "input", ["N", 3, 224, 224], "probs", 8,
                   True, 13, 8, False, 2)
        classifier(f"{out}/five.onnx", "Input3", [1, 1, 64, 64], "Plus692_Output_0", 5,
                   False, 8, 3, True, 3)
    elif sys.argv[1] == "run":
        import onnxruntime as ort
        sess = ort.InferenceSession(sys.argv[2], providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        shape = [1] + [d if isinstance(d, int) else 1 for d in inp.shape[1:]]
        x = np.fromfile(sys.argv[3], dtype="<f4").reshape(shape)
        y = sess.run(None, {inp.name: x})[0]
        json.dump(y[0].astype(float).tolist(), sys.stdout)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
