//! The ONNX graph under construction ([`Builder`]) and the protobuf helpers both writers use:
//! attributes, initializers, parameters read from a [`Network`] (with batch norms folded into
//! the convolutions that feed them), the float form of weightless operations, and the model
//! around the graph. The fp32 writer ([`super::fp32`]) and the int8 writer
//! (`crate::quantize::int8_onnx`) both build on it.

use tch::{Device, Kind, Tensor};
use tract_onnx::pb;

use super::{INPUT_NAME, IR_VERSION, OPSET, OUTPUT_NAME, OnnxError, OnnxForm};
use crate::model::graph::{Graph, Network, Node, Op};

/// Rank of a graph value in the ONNX model: 4 (`[1, C, H, W]`) or 2 (`[1, C]`).
pub(crate) fn rank_of(graph: &Graph, ranks: &[usize], i: usize) -> usize {
    match graph.nodes[i].op {
        Op::GlobalAvgPool | Op::Linear { .. } => 2,
        Op::Input => 4,
        _ => graph.nodes[i]
            .inputs
            .first()
            .map_or(4, |&j| ranks.get(j).copied().unwrap_or(4)),
    }
}

/// For each node, the nodes that read it.
pub(crate) fn consumers(graph: &Graph) -> Vec<Vec<usize>> {
    let mut out = vec![Vec::new(); graph.nodes.len()];
    for (i, n) in graph.nodes.iter().enumerate() {
        for &j in &n.inputs {
            out[j].push(i);
        }
    }
    out
}

/// The ONNX graph under construction: nodes in order and initializers.
#[derive(Default)]
pub(crate) struct Builder {
    pub(crate) nodes: Vec<pb::NodeProto>,
    pub(crate) initializers: Vec<pb::TensorProto>,
    relu6_bounds: bool,
    /// How layers are spelled.
    pub(crate) form: OnnxForm,
}

impl Builder {
    /// An empty graph whose layers are written in `form`.
    pub(crate) fn new(form: OnnxForm) -> Builder {
        Builder {
            form,
            ..Builder::default()
        }
    }

    /// Appends a node `op` named `name` reading `inputs` and writing `output`.
    pub(crate) fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        output: &str,
        attribute: Vec<pb::AttributeProto>,
    ) {
        self.nodes.push(pb::NodeProto {
            name: name.to_string(),
            op_type: op.to_string(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            attribute,
            ..Default::default()
        });
    }

    /// A float initializer of shape `dims`.
    pub(crate) fn constant(&mut self, name: &str, dims: &[i64], values: Vec<f32>) {
        self.initializers.push(pb::TensorProto {
            name: name.to_string(),
            dims: dims.to_vec(),
            data_type: pb::tensor_proto::DataType::Float as i32,
            float_data: values,
            ..Default::default()
        });
    }

    /// The scalar `0` and `6` initializers of `Clip` for ReLU6, written once; returns their
    /// names.
    pub(crate) fn relu6_bounds(&mut self) -> (&'static str, &'static str) {
        if !self.relu6_bounds {
            self.constant("relu6.min", &[], vec![0.0]);
            self.constant("relu6.max", &[], vec![6.0]);
            self.relu6_bounds = true;
        }
        ("relu6.min", "relu6.max")
    }

    /// A one-dimensional `int64` initializer (pads, shapes, slice bounds).
    pub(crate) fn constant_i64(&mut self, name: &str, values: &[i64]) {
        self.constant_raw(
            name,
            &[values.len() as i64],
            pb::tensor_proto::DataType::Int64,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        );
    }

    /// An integer initializer stored as little-endian `raw_data`.
    pub(crate) fn constant_raw(
        &mut self,
        name: &str,
        dims: &[i64],
        data_type: pb::tensor_proto::DataType,
        raw: Vec<u8>,
    ) {
        self.initializers.push(pb::TensorProto {
            name: name.to_string(),
            dims: dims.to_vec(),
            data_type: data_type as i32,
            raw_data: raw,
            ..Default::default()
        });
    }
}

/// The attributes of a 2-D `Conv` or `QLinearConv`: kernel, one stride for both axes,
/// `[top, left, bottom, right]` padding, no dilation, groups.
pub(crate) fn conv_attributes(
    kernel: [i64; 2],
    stride: i64,
    pad: [i64; 4],
    groups: i64,
) -> Vec<pb::AttributeProto> {
    vec![
        ints("kernel_shape", &kernel),
        ints("strides", &[stride, stride]),
        ints("pads", &pad),
        ints("dilations", &[1, 1]),
        int("group", groups),
    ]
}

/// An integer-list attribute.
pub(crate) fn ints(name: &str, values: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

/// An integer attribute.
pub(crate) fn int(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

/// A float tensor value of fixed shape `dims` (graph input or output).
pub(crate) fn value_info(name: &str, dims: &[i64]) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| pb::tensor_shape_proto::Dimension {
                            denotation: String::new(),
                            value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(d)),
                        })
                        .collect(),
                }),
            })),
        }),
        ..Default::default()
    }
}

/// A parameter tensor of node `i` as `f64` on the CPU.
pub(crate) fn param(net: &Network, i: usize, k: usize, what: &str) -> Result<Tensor, OnnxError> {
    net.params
        .get(i)
        .and_then(|p| p.get(k))
        .map(|t| t.detach().to_device(Device::Cpu).to_kind(Kind::Double))
        .ok_or_else(|| OnnxError::Params {
            node: net.graph.nodes[i].name.clone(),
            reason: format!("has no {what} tensor"),
        })
}

/// The values of `t` as flat `f32` (for an initializer of node `node`).
pub(crate) fn values(t: &Tensor, node: &str) -> Result<Vec<f32>, OnnxError> {
    Vec::<f32>::try_from(t.to_kind(Kind::Float).contiguous().flatten(0, -1)).map_err(|e| {
        OnnxError::Params {
            node: node.to_string(),
            reason: format!("cannot read parameter values: {e}"),
        }
    })
}

/// Evaluation-mode batch norm of node `i` as per-channel `(scale, shift)`.
pub(crate) fn bn_scale_shift(
    net: &Network,
    i: usize,
    eps: f64,
) -> Result<(Tensor, Tensor), OnnxError> {
    let gamma = param(net, i, 0, "weight")?;
    let beta = param(net, i, 1, "bias")?;
    let mean = param(net, i, 2, "running_mean")?;
    let var = param(net, i, 3, "running_var")?;
    let scale = gamma / (var + eps).sqrt();
    let shift = beta - &mean * &scale;
    Ok((scale, shift))
}

/// The batch norms folded into the convolution that feeds them: for each convolution, the
/// batch norm it absorbs (when the convolution feeds only that batch norm).
pub(crate) fn batch_norm_folds(graph: &Graph) -> Vec<Option<usize>> {
    let readers = consumers(graph);
    let mut fold_into: Vec<Option<usize>> = vec![None; graph.nodes.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        if let (Op::BatchNorm { .. }, Some(&j)) = (&node.op, node.inputs.first())
            && matches!(graph.nodes[j].op, Op::Conv { .. })
            && readers[j] == [i]
            && j != graph.output
            && j != graph.features
        {
            fold_into[j] = Some(i);
        }
    }
    fold_into
}

/// Convolution weight and bias of node `i` with the batch norm `fold` (if any) folded in, as
/// `f64` tensors on the CPU.
pub(crate) fn folded_conv(
    net: &Network,
    i: usize,
    fold: Option<usize>,
) -> Result<(Tensor, Tensor), OnnxError> {
    let Op::Conv { out, bias, .. } = net.graph.nodes[i].op else {
        return Err(OnnxError::Unsupported {
            node: net.graph.nodes[i].name.clone(),
            reason: "not a convolution".into(),
        });
    };
    let w = param(net, i, 0, "weight")?;
    let b = if bias {
        param(net, i, 1, "bias")?
    } else {
        Tensor::zeros([out], (Kind::Double, Device::Cpu))
    };
    match fold {
        Some(bn) => {
            let Op::BatchNorm { eps } = net.graph.nodes[bn].op else {
                return Err(OnnxError::Unsupported {
                    node: net.graph.nodes[bn].name.clone(),
                    reason: "folding target is not a batch norm".into(),
                });
            };
            let (scale, shift) = bn_scale_shift(net, bn, eps)?;
            Ok((w * scale.view([-1, 1, 1, 1]), b * &scale + shift))
        }
        None => Ok((w, b)),
    }
}

/// The model around the built graph: one input `[1, C, H, W]`, one output `[1, classes]`.
pub(crate) fn model_proto(
    graph: &Graph,
    b: Builder,
    classes: i64,
    producer_version: &str,
) -> pb::ModelProto {
    let s = graph.input_shape();
    let onnx_graph = pb::GraphProto {
        name: "emotion".into(),
        node: b.nodes,
        initializer: b.initializers,
        input: vec![value_info(INPUT_NAME, &[1, s.c, s.h, s.w])],
        output: vec![value_info(OUTPUT_NAME, &[1, classes])],
        ..Default::default()
    };
    pb::ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "emotion-train".into(),
        producer_version: producer_version.into(),
        graph: Some(onnx_graph),
        ..Default::default()
    }
}

/// The float ONNX form of the operations without weights to convert (pools, activations,
/// per-channel affine maps, residual adds, global pooling), shared by the fp32 and the int8
/// writer. `inputs` are the ONNX values of node `i`'s inputs and `rank` the rank of its
/// output; the result is written to `out`. Returns `Ok(false)`, writing nothing, for the
/// operations each writer emits its own way (input, convolution, linear, dropout).
pub(crate) fn float_op(
    b: &mut Builder,
    net: &Network,
    i: usize,
    rank: usize,
    inputs: &[String],
    out: &str,
) -> Result<bool, OnnxError> {
    let node = &net.graph.nodes[i];
    let name = node.name.as_str();
    let arg = |k: usize| {
        inputs
            .get(k)
            .map(String::as_str)
            .ok_or_else(|| OnnxError::Unsupported {
                node: name.to_string(),
                reason: format!("input {k} is missing or not computed"),
            })
    };
    match &node.op {
        Op::MaxPool {
            kernel,
            stride,
            pad,
        } => max_pool(b, name, arg(0)?, out, *kernel, *stride, pad),
        Op::AvgPool { kernel, stride } => b.node(
            "AveragePool",
            name,
            &[arg(0)?],
            out,
            vec![
                ints("kernel_shape", &[*kernel, *kernel]),
                ints("strides", &[*stride, *stride]),
            ],
        ),
        Op::Relu => b.node("Relu", name, &[arg(0)?], out, vec![]),
        Op::Relu6 => {
            let (lo, hi) = b.relu6_bounds();
            b.node("Clip", name, &[arg(0)?, lo, hi], out, vec![]);
        }
        Op::BatchNorm { eps } => {
            let (scale, shift) = bn_scale_shift(net, i, *eps)?;
            per_channel(b, node, rank, arg(0)?, &scale, &shift, out)?;
        }
        Op::Affine => {
            let scale = param(net, i, 0, "weight")?;
            let shift = param(net, i, 1, "bias")?;
            per_channel(b, node, rank, arg(0)?, &scale, &shift, out)?;
        }
        Op::AddPadded => add_padded(b, &net.graph, i, [arg(0)?, arg(1)?], out)?,
        Op::Add => b.node("Add", name, &[arg(0)?, arg(1)?], out, vec![]),
        Op::GlobalAvgPool => {
            let pooled = format!("{name}.pooled");
            b.node("GlobalAveragePool", name, &[arg(0)?], &pooled, vec![]);
            b.node(
                "Flatten",
                &format!("{name}.flatten"),
                &[&pooled],
                out,
                vec![int("axis", 1)],
            );
        }
        Op::Input | Op::Conv { .. } | Op::Linear { .. } | Op::Dropout { .. } => return Ok(false),
    }
    Ok(true)
}

/// A square `kernel` x `kernel` max pool written as two one-dimensional pools, over rows
/// (`{name}.rows`) then columns; the same values (the maximum is separable and padding counts
/// as -inf in both). tract 0.23 walks a 3x3 stride-2 window with a scalar strided loop; the
/// row pass runs on contiguous rows and the column pass has a third of the taps, which made
/// mini-Xception's four pools 35% cheaper in tract (issue #12), and BlazeFace's 2x2 stride-2
/// pools half as dear (0.17 against 0.08 ms at 64x64x28). A 1x1 window stays one node.
/// `x` may be float or `u8` (the int8 writer pools in `u8`). In [`OnnxForm::Plain`], one
/// `MaxPool`.
pub(crate) fn max_pool(
    b: &mut Builder,
    name: &str,
    x: &str,
    out: &str,
    kernel: i64,
    stride: i64,
    pad: &[i64; 4],
) {
    if kernel == 1 || b.form == OnnxForm::Plain {
        b.node(
            "MaxPool",
            name,
            &[x],
            out,
            vec![
                ints("kernel_shape", &[kernel, kernel]),
                ints("strides", &[stride, stride]),
                ints("pads", pad),
            ],
        );
        return;
    }
    let [top, left, bottom, right] = *pad;
    let rows = format!("{name}.rows");
    row_pass(b, &rows, x, [kernel, stride], [top, bottom]);
    b.node(
        "MaxPool",
        name,
        &[&rows],
        out,
        vec![
            ints("kernel_shape", &[1, kernel]),
            ints("strides", &[1, stride]),
            ints("pads", &[0, left, 0, right]),
        ],
    );
}

/// A square `kernel` x `kernel` max pool of a channels-last `[1, H, W, C]` value `x`, written
/// as two row passes and a `Transpose` back to `[1, C, OH, OW]` in `out` (`window` is
/// `[kernel, stride]`, `shape` is `[H, W, C, OH]`). Both passes pool along rows of contiguous
/// memory, which tract runs on whole vectors: over image rows on the `[1, 1, H, W * C]` view
/// (`{name}.rows`), then over pixels on the `[1, OH, W, C]` view (`{name}.columns`); the same
/// values as one pool (padding counts as -inf). tract folds the final `Transpose` into the nodes that read the pool. In the
/// channels-first form the column pass strides over single floats, a scalar loop: this form
/// took the mini-Xception's pools, with their channels-last products, from 0.14 to 0.06 ms
/// (issue #12).
pub(crate) fn max_pool_channels_last(
    b: &mut Builder,
    name: &str,
    x: &str,
    out: &str,
    [kernel, stride]: [i64; 2],
    pad: &[i64; 4],
    [h, w, c, out_h]: [i64; 4],
) {
    let [top, left, bottom, right] = *pad;
    let view = |b: &mut Builder, what: &str, input: &str, dims: &[i64]| -> String {
        let (shape, v) = (format!("{name}.{what}.shape"), format!("{name}.{what}"));
        b.constant_i64(&shape, dims);
        b.node("Reshape", &v, &[input, &shape], &v, vec![]);
        v
    };
    let pass = |b: &mut Builder, what: &str, input: &str, pads: [i64; 2]| -> String {
        let v = format!("{name}.{what}");
        row_pass(b, &v, input, [kernel, stride], pads);
        v
    };
    let image_rows = view(b, "image_rows", x, &[1, 1, h, w * c]);
    let rows = pass(b, "rows", &image_rows, [top, bottom]);
    let pixels = view(b, "pixels", &rows, &[1, out_h, w, c]);
    let columns = pass(b, "columns", &pixels, [left, right]);
    b.node(
        "Transpose",
        name,
        &[&columns],
        out,
        vec![ints("perm", &[0, 3, 1, 2])],
    );
}

/// The `rows x cols` row-major matrix `m` transposed (`cols x rows`, row-major).
pub(crate) fn transposed(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; m.len()];
    for (r, row) in m.chunks_exact(cols.max(1)).take(rows).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            t[c * rows + r] = v;
        }
    }
    t
}

/// A `kernel x 1` max pool over the rows of `x` (`window` is `[kernel, stride]`, `pads` the
/// rows added before and after), node and output both named `v`.
fn row_pass(
    b: &mut Builder,
    v: &str,
    x: &str,
    [kernel, stride]: [i64; 2],
    [before, after]: [i64; 2],
) {
    b.node(
        "MaxPool",
        v,
        &[x],
        v,
        vec![
            ints("kernel_shape", &[kernel, 1]),
            ints("strides", &[stride, 1]),
            ints("pads", &[before, 0, after, 0]),
        ],
    );
}

/// For a 1x1 convolution with a stride and no padding: its input subsampled by `stride` in a
/// separate `MaxPool` (1x1 window, `{name}.subsample`), so the convolution itself runs with
/// stride 1; `None` for any other convolution. The same values: a 1x1 convolution reads only
/// the pixels the stride keeps. tract 0.23 lowers a strided 1x1 convolution to two
/// `Downsample` copies through generic ndarray slicing (9% of mini-Xception's time in tract);
/// the pool is a tight loop (issue #12). `x` may be float or `u8`. Never in
/// [`OnnxForm::Plain`].
pub(crate) fn subsample_for_pointwise(
    b: &mut Builder,
    name: &str,
    x: &str,
    kernel: &[i64; 2],
    stride: i64,
    pad: &[i64; 4],
) -> Option<String> {
    if *kernel != [1, 1] || stride <= 1 || *pad != [0; 4] || b.form == OnnxForm::Plain {
        return None;
    }
    let v = format!("{name}.subsample");
    b.node(
        "MaxPool",
        &v,
        &[x],
        &v,
        vec![
            ints("kernel_shape", &[1, 1]),
            ints("strides", &[stride, stride]),
        ],
    );
    Some(v)
}

/// dlib's padded residual sum: each input smaller than `node`'s output shape is zero-padded at
/// the end of channels, rows and columns (`Pad`, opset 13 form with the pads as an input),
/// then the two are added.
pub(crate) fn add_padded(
    b: &mut Builder,
    graph: &Graph,
    i: usize,
    inputs: [&str; 2],
    out: &str,
) -> Result<(), OnnxError> {
    let node = &graph.nodes[i];
    let target = node.shape;
    let mut padded: Vec<String> = Vec::with_capacity(2);
    for (k, x) in inputs.iter().enumerate() {
        let Some(&j) = node.inputs.get(k) else {
            return Err(OnnxError::Unsupported {
                node: node.name.clone(),
                reason: format!("input {k} is missing"),
            });
        };
        let s = graph.nodes[j].shape;
        if (s.c, s.h, s.w) == (target.c, target.h, target.w) {
            padded.push((*x).to_string());
            continue;
        }
        let pads_name = format!("{}.pads{k}", node.name);
        let pads: Vec<i64> = vec![
            0,
            0,
            0,
            0,
            0,
            target.c - s.c,
            target.h - s.h,
            target.w - s.w,
        ];
        b.constant_i64(&pads_name, &pads);
        let v = format!("{}.padded{k}", node.name);
        b.node(
            "Pad",
            &format!("{}.pad{k}", node.name),
            &[x, &pads_name],
            &v,
            vec![],
        );
        padded.push(v);
    }
    b.node("Add", &node.name, &[&padded[0], &padded[1]], out, vec![]);
    Ok(())
}

/// `y = x * scale + shift` per channel, for a `[1, C, H, W]` or `[1, C]` value.
pub(crate) fn per_channel(
    b: &mut Builder,
    node: &Node,
    rank: usize,
    x: &str,
    scale: &Tensor,
    shift: &Tensor,
    out: &str,
) -> Result<String, OnnxError> {
    let c = node.shape.c;
    let dims: Vec<i64> = if rank == 4 { vec![c, 1, 1] } else { vec![c] };
    let (sn, tn) = (
        format!("{}.scale", node.name),
        format!("{}.shift", node.name),
    );
    b.constant(&sn, &dims, values(scale, &node.name)?);
    b.constant(&tn, &dims, values(shift, &node.name)?);
    let scaled = format!("{}.scaled", node.name);
    b.node(
        "Mul",
        &format!("{}.mul", node.name),
        &[x, &sn],
        &scaled,
        vec![],
    );
    b.node("Add", &node.name, &[&scaled, &tn], out, vec![]);
    Ok(out.to_string())
}

#[cfg(test)]
mod tests {
    use super::transposed;

    #[test]
    fn transposed_swaps_rows_and_columns() {
        // [[1, 2, 3], [4, 5, 6]] -> [[1, 4], [2, 5], [3, 6]].
        let m = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(transposed(&m, 2, 3), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        assert_eq!(transposed(&transposed(&m, 2, 3), 3, 2), m);
    }
}
