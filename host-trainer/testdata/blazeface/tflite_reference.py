#!/usr/bin/env python3
"""Runs a BlazeFace .tflite in the LiteRT interpreter (PyPI ai-edge-litert) on raw input
tensors and writes the raw outputs, for the converter's parity test.

    tflite_reference.py MODEL.tflite IN.f32 OUT_PREFIX [IN.f32 OUT_PREFIX ...]

IN.f32 holds the input as little-endian float32 in the model's NHWC layout ([1, S, S, 3],
values in [-1, 1]); OUT_PREFIX.regressors.f32 and OUT_PREFIX.classificators.f32 receive the two
outputs ([1, N, 16] and [1, N, 1]) the same way. The outputs are told apart by shape.
TFLite's reference kernels are used (OpResolverType.BUILTIN_REF, no XNNPACK), one thread.
"""
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType


def main(argv):
    if len(argv) < 4 or len(argv) % 2 != 0:
        sys.exit(__doc__)
    it = Interpreter(
        model_path=argv[1],
        num_threads=1,
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
    )
    it.allocate_tensors()
    (inp,) = it.get_input_details()
    outs = it.get_output_details()
    for src, prefix in zip(argv[2::2], argv[3::2]):
        x = np.fromfile(src, dtype="<f4").reshape(inp["shape"])
        it.set_tensor(inp["index"], x)
        it.invoke()
        for o in outs:
            y = it.get_tensor(o["index"])
            name = "regressors" if y.shape[-1] == 16 else "classificators"
            y.astype("<f4").tofile(f"{prefix}.{name}.f32")


if __name__ == "__main__":
    main(sys.argv)
