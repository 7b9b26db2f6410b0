//! A TensorFlow Lite float model as an ONNX graph (IR 8, opset 13), for the operator subset
//! MediaPipe's BlazeFace face detectors use: `CONV_2D`, `DEPTHWISE_CONV_2D`, `ADD`, `PAD`,
//! `MAX_POOL_2D`, `RELU`, `RESHAPE`, `CONCATENATION`, `RESIZE_BILINEAR` and `DEQUANTIZE`.
//!
//! The flatbuffer is read, with verification, through the TFLite schema types that
//! `tract-tflite` generates and exports. Constant tensors are fp32, or fp16 behind a
//! `DEQUANTIZE`, which is folded here: the fp16 values become fp32 initializers.
//!
//! Layout: TFLite is NHWC, ONNX convolutions are NCHW. Every 4-D activation is kept NCHW in
//! the ONNX graph (the graph input is `[1, C, H, W]`); kernels are permuted (`OHWI` -> `OIHW`,
//! depthwise `1HW(C*M)` -> `(C*M)1HW` with `group = C`), `PAD` amounts and `CONCATENATION`
//! axes are mapped to NCHW, and a `RESHAPE` of a 4-D activation transposes it back to NHWC
//! first, so flattened outputs keep TFLite's element order. TFLite's `SAME` padding becomes
//! explicit ONNX pads (TFLite puts the odd pixel after, as ONNX `SAME_UPPER` would).
//!
//! `RESIZE_BILINEAR` is written as two matrix products by constant interpolation matrices,
//! over columns (`[1, C, H, W] x [W, OW]`) then rows (`[OH, H] x [1, C, H, OW]`), with the
//! coordinates of TFLite's mode (align corners, half-pixel centres or neither) and edge
//! clamping: the same values as ONNX's linear `Resize` to float rounding. tract 0.23's
//! `Resize` walks every output point with its own coordinate arithmetic; the full-range
//! model's three upsamplings took 1.87 ms of its 11.5 in tract; with the products the network
//! took 10.2 ms (`emotion-edge bench --profile`, issue #12).

use std::collections::HashMap;

use half::f16;
use tract_onnx::pb;
use tract_tflite::tflite;

use crate::onnx::builder::{Builder, int, ints, max_pool, transposed, value_info};
use crate::onnx::conv_form::{self, ConvSpec, Form};
use crate::onnx::{IR_VERSION, OPSET};

/// Why a TFLite file could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum TfliteError {
    /// Not a TFLite flatbuffer, or one that fails the schema's verification.
    #[error("not a valid TFLite model: {0}")]
    Flatbuffer(String),
    /// Something the model needs that this converter does not handle.
    #[error("operator {index} ({op}): {reason}")]
    Unsupported {
        /// Operator index in the subgraph.
        index: usize,
        /// Operator name.
        op: String,
        /// What is not supported.
        reason: String,
    },
    /// A structural problem in the file (a missing table, a bad tensor index).
    #[error("malformed TFLite model: {0}")]
    Malformed(String),
}

/// A value the converter knows for a TFLite tensor.
#[derive(Debug, Clone)]
enum Value {
    /// A float constant (fp32, or fp16 already dequantized), TFLite shape.
    Float { shape: Vec<usize>, data: Vec<f32> },
    /// An int32 constant (paddings, shapes, sizes).
    Int { data: Vec<i32> },
    /// A graph value; `nchw` when it is a 4-D activation stored NCHW.
    Node { name: String, nchw: bool },
}

/// The converted model: ONNX protobuf plus the shapes of its input and outputs.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The ONNX model.
    pub model: pb::ModelProto,
    /// The ONNX input shape, `[1, C, H, W]`.
    pub input_shape: [usize; 4],
    /// Names and TFLite shapes of the outputs, in the TFLite model's order.
    pub outputs: Vec<(String, Vec<usize>)>,
}

const NHWC_TO_NCHW_AXIS: [usize; 4] = [0, 2, 3, 1];

/// Converts a TFLite flatbuffer (first subgraph, one 4-D float input) into ONNX. Output
/// names are the TFLite tensor names unless `output_names` gives one per output.
pub fn convert(bytes: &[u8], output_names: Option<&[&str]>) -> Result<Converted, TfliteError> {
    let model = tflite::root_as_model(bytes).map_err(|e| TfliteError::Flatbuffer(e.to_string()))?;
    let malformed = |s: &str| TfliteError::Malformed(s.to_string());
    let subgraph = model
        .subgraphs()
        .and_then(|s| (!s.is_empty()).then(|| s.get(0)))
        .ok_or_else(|| malformed("no subgraph"))?;
    let tensors = subgraph.tensors().ok_or_else(|| malformed("no tensors"))?;
    let buffers = model.buffers().ok_or_else(|| malformed("no buffers"))?;
    let codes = model
        .operator_codes()
        .ok_or_else(|| malformed("no operator codes"))?;
    let operators = subgraph
        .operators()
        .ok_or_else(|| malformed("no operators"))?;

    let tensor = |i: i32| -> Result<tflite::Tensor<'_>, TfliteError> {
        usize::try_from(i)
            .ok()
            .filter(|&i| i < tensors.len())
            .map(|i| tensors.get(i))
            .ok_or_else(|| TfliteError::Malformed(format!("tensor index {i} out of range")))
    };
    let shape_of = |t: &tflite::Tensor<'_>| -> Vec<usize> {
        t.shape()
            .map(|s| s.iter().map(|d| d.max(0) as usize).collect())
            .unwrap_or_default()
    };
    let onnx_name = |i: i32, t: &tflite::Tensor<'_>| format!("t{i}:{}", t.name().unwrap_or(""));

    let mut values: HashMap<i32, Value> = HashMap::new();
    // Constants: tensors with a non-empty buffer.
    for i in 0..tensors.len() {
        let t = tensors.get(i);
        let b = t.buffer() as usize;
        if b == 0 || b >= buffers.len() {
            continue;
        }
        let Some(data) = buffers.get(b).data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        let bytes = data.bytes();
        let shape = shape_of(&t);
        let v = match t.type_() {
            tflite::TensorType::FLOAT32 => Value::Float {
                shape,
                data: bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            },
            tflite::TensorType::FLOAT16 => Value::Float {
                shape,
                data: bytes
                    .chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            },
            tflite::TensorType::INT32 => Value::Int {
                data: bytes
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            },
            other => {
                return Err(TfliteError::Malformed(format!(
                    "constant tensor {i} has unsupported type {other:?}"
                )));
            }
        };
        values.insert(i as i32, v);
    }

    let inputs = subgraph.inputs().ok_or_else(|| malformed("no inputs"))?;
    if inputs.len() != 1 {
        return Err(malformed("exactly one input is supported"));
    }
    let input_index = inputs.get(0);
    let input_tensor = tensor(input_index)?;
    let in_shape = shape_of(&input_tensor);
    let [n, h, w, c] = in_shape[..] else {
        return Err(TfliteError::Malformed(format!(
            "input shape {in_shape:?} is not NHWC"
        )));
    };
    let input_shape = [n, c, h, w];
    values.insert(
        input_index,
        Value::Node {
            name: crate::onnx::INPUT_NAME.to_string(),
            nchw: true,
        },
    );

    let mut b = Builder::default();
    for (index, op) in operators.iter().enumerate() {
        let code = codes
            .iter()
            .nth(op.opcode_index() as usize)
            .ok_or_else(|| malformed("operator code index out of range"))?;
        let builtin = tflite::BuiltinOperator(
            code.builtin_code()
                .0
                .max(i32::from(code.deprecated_builtin_code())),
        );
        let op_name = format!("{:?}", builtin);
        let unsupported = |reason: String| TfliteError::Unsupported {
            index,
            op: op_name.clone(),
            reason,
        };
        let op_inputs: Vec<i32> = op.inputs().map(|v| v.iter().collect()).unwrap_or_default();
        let op_outputs: Vec<i32> = op.outputs().map(|v| v.iter().collect()).unwrap_or_default();
        let &[out_index] = &op_outputs[..] else {
            return Err(unsupported(format!("{} outputs", op_outputs.len())));
        };
        let out_tensor = tensor(out_index)?;
        let out_shape = shape_of(&out_tensor);
        let out_name = onnx_name(out_index, &out_tensor);
        let get = |k: usize| -> Result<&Value, TfliteError> {
            let i = *op_inputs
                .get(k)
                .ok_or_else(|| unsupported(format!("input {k} missing")))?;
            values
                .get(&i)
                .ok_or_else(|| unsupported(format!("input tensor {i} is not computed yet")))
        };
        let node_input = |k: usize| -> Result<(String, bool), TfliteError> {
            match get(k)? {
                Value::Node { name, nchw } => Ok((name.clone(), *nchw)),
                _ => Err(unsupported(format!("input {k} is a constant"))),
            }
        };
        let float_const = |k: usize| -> Result<(Vec<usize>, Vec<f32>), TfliteError> {
            match get(k)? {
                Value::Float { shape, data } => Ok((shape.clone(), data.clone())),
                _ => Err(unsupported(format!("input {k} is not a float constant"))),
            }
        };
        let int_const = |k: usize| -> Result<Vec<i32>, TfliteError> {
            match get(k)? {
                Value::Int { data } => Ok(data.clone()),
                _ => Err(unsupported(format!("input {k} is not an int32 constant"))),
            }
        };
        let in_spatial = |k: usize| -> Result<(usize, usize), TfliteError> {
            let t = tensor(op_inputs[k])?;
            match shape_of(&t)[..] {
                [_, h, w, _] => Ok((h, w)),
                ref s => Err(unsupported(format!("input shape {s:?} is not NHWC"))),
            }
        };

        let mut activation = tflite::ActivationFunctionType::NONE;
        let produced = match builtin {
            tflite::BuiltinOperator::DEQUANTIZE => {
                let v = get(0)?.clone();
                if !matches!(v, Value::Float { .. }) {
                    return Err(unsupported("only fp16 constants are dequantized".into()));
                }
                values.insert(out_index, v);
                continue;
            }
            tflite::BuiltinOperator::CONV_2D
            | tflite::BuiltinOperator::DEPTHWISE_CONV_2D => 'written: {
                let depthwise = builtin == tflite::BuiltinOperator::DEPTHWISE_CONV_2D;
                let (x, _) = node_input(0)?;
                let (wshape, wdata) = float_const(1)?;
                let [o, kh, kw, i] = wshape[..] else {
                    return Err(unsupported(format!("kernel shape {wshape:?}")));
                };
                let (padding, sh, sw, dh, dw) = if depthwise {
                    let opt = op
                        .builtin_options_as_depthwise_conv_2_doptions()
                        .ok_or_else(|| unsupported("no options".into()))?;
                    activation = opt.fused_activation_function();
                    (
                        opt.padding(),
                        opt.stride_h(),
                        opt.stride_w(),
                        opt.dilation_h_factor(),
                        opt.dilation_w_factor(),
                    )
                } else {
                    let opt = op
                        .builtin_options_as_conv_2_doptions()
                        .ok_or_else(|| unsupported("no options".into()))?;
                    activation = opt.fused_activation_function();
                    (
                        opt.padding(),
                        opt.stride_h(),
                        opt.stride_w(),
                        opt.dilation_h_factor(),
                        opt.dilation_w_factor(),
                    )
                };
                let (ih, iw) = in_spatial(0)?;
                let (strides, dilations) = ([sh, sw], [dh, dw]);
                let pads =
                    pads(padding, (ih, iw), [kh, kw], strides, dilations).map_err(unsupported)?;
                // ONNX weight [O, I/group, kH, kW].
                let (onnx_w, dims, group) = if depthwise {
                    // [1, kH, kW, C*M] -> [C*M, 1, kH, kW]; group = input channels.
                    let channels = in_channels(&tensor(op_inputs[0])?, &shape_of)?;
                    let mut out = vec![0.0; wdata.len()];
                    for y in 0..kh {
                        for x in 0..kw {
                            for ch in 0..i {
                                out[(ch * kh + y) * kw + x] = wdata[(y * kw + x) * i + ch];
                            }
                        }
                    }
                    (out, [i as i64, 1, kh as i64, kw as i64], channels as i64)
                } else {
                    let mut out = vec![0.0; wdata.len()];
                    for oc in 0..o {
                        for y in 0..kh {
                            for x in 0..kw {
                                for ic in 0..i {
                                    out[((oc * i + ic) * kh + y) * kw + x] =
                                        wdata[((oc * kh + y) * kw + x) * i + ic];
                                }
                            }
                        }
                    }
                    (out, [o as i64, i as i64, kh as i64, kw as i64], 1)
                };
                // A dense convolution on a narrow map goes on wide rows where tract runs that
                // faster (onnx::conv_form): BlazeFace's first convolution.
                if !depthwise && sh == sw && (dh, dw) == (1, 1) {
                    let stride = i64::from(sh);
                    let out_len = |len: usize, k: usize, before: i64, after: i64| {
                        (len as i64 + before + after - k as i64) / stride + 1
                    };
                    let bias = if op_inputs.len() > 2 && op_inputs[2] >= 0 {
                        float_const(2)?.1
                    } else {
                        vec![0.0; o]
                    };
                    let spec = ConvSpec {
                        name: &out_name,
                        input: &x,
                        output: &out_name,
                        in_channels: i as i64,
                        out_channels: o as i64,
                        in_hw: [ih as i64, iw as i64],
                        out_hw: [
                            out_len(ih, kh, pads[0], pads[2]),
                            out_len(iw, kw, pads[1], pads[3]),
                        ],
                        kernel: [kh as i64, kw as i64],
                        stride,
                        pad: pads,
                        groups: 1,
                        weight: onnx_w.clone(),
                        bias,
                        // BlazeFace's pointwise convolutions feed residual adds.
                        feeds_depthwise: None,
                        feeds_max_pool: false,
                    };
                    if conv_form::form(&spec) != Form::Plain {
                        conv_form::write(&mut b, spec);
                        break 'written true;
                    }
                }
                let wname = format!("{out_name}.weight");
                b.constant(&wname, &dims, onnx_w);
                let mut conv_inputs = vec![x, wname];
                if op_inputs.len() > 2 && op_inputs[2] >= 0 {
                    let (_, bias) = float_const(2)?;
                    let bname = format!("{out_name}.bias");
                    b.constant(&bname, &[bias.len() as i64], bias);
                    conv_inputs.push(bname);
                }
                let refs: Vec<&str> = conv_inputs.iter().map(String::as_str).collect();
                let mut attrs = vec![
                    ints("kernel_shape", &[kh as i64, kw as i64]),
                    ints("strides", &[i64::from(sh), i64::from(sw)]),
                    ints("dilations", &[i64::from(dh), i64::from(dw)]),
                    ints("pads", &pads),
                ];
                if group != 1 {
                    attrs.push(int("group", group));
                }
                b.node("Conv", &out_name, &refs, &out_name, attrs);
                true
            }
            tflite::BuiltinOperator::ADD => {
                let (x, nx) = node_input(0)?;
                let (y, ny) = node_input(1)?;
                if nx != ny {
                    return Err(unsupported("inputs of different layouts".into()));
                }
                if let Some(opt) = op.builtin_options_as_add_options() {
                    activation = opt.fused_activation_function();
                }
                b.node("Add", &out_name, &[&x, &y], &out_name, vec![]);
                nx
            }
            tflite::BuiltinOperator::RELU => {
                let (x, nx) = node_input(0)?;
                b.node("Relu", &out_name, &[&x], &out_name, vec![]);
                nx
            }
            tflite::BuiltinOperator::PAD => {
                let (x, nx) = node_input(0)?;
                let p = int_const(1)?;
                if p.len() != 8 || !nx {
                    return Err(unsupported("only 4-D NHWC paddings are handled".into()));
                }
                // TFLite [[n0,n1],[h0,h1],[w0,w1],[c0,c1]] -> ONNX NCHW [begins..., ends...].
                let pad = |d: usize, e: usize| i64::from(p[2 * d + e]);
                let onnx_pads = [
                    pad(0, 0),
                    pad(3, 0),
                    pad(1, 0),
                    pad(2, 0),
                    pad(0, 1),
                    pad(3, 1),
                    pad(1, 1),
                    pad(2, 1),
                ];
                let pname = format!("{out_name}.pads");
                b.constant_i64(&pname, &onnx_pads);
                b.node("Pad", &out_name, &[&x, &pname], &out_name, vec![]);
                true
            }
            tflite::BuiltinOperator::MAX_POOL_2D => {
                let (x, _) = node_input(0)?;
                let opt = op
                    .builtin_options_as_pool_2_doptions()
                    .ok_or_else(|| unsupported("no options".into()))?;
                activation = opt.fused_activation_function();
                let k = [opt.filter_height() as usize, opt.filter_width() as usize];
                let strides = [opt.stride_h(), opt.stride_w()];
                let pads =
                    pads(opt.padding(), in_spatial(0)?, k, strides, [1, 1]).map_err(unsupported)?;
                if k[0] == k[1] && strides[0] == strides[1] {
                    // A row pass and a column pass, as the classifier's pools.
                    max_pool(
                        &mut b,
                        &out_name,
                        &x,
                        &out_name,
                        k[0] as i64,
                        i64::from(strides[0]),
                        &pads,
                    );
                } else {
                    b.node(
                        "MaxPool",
                        &out_name,
                        &[&x],
                        &out_name,
                        vec![
                            ints("kernel_shape", &[k[0] as i64, k[1] as i64]),
                            ints("strides", &[i64::from(strides[0]), i64::from(strides[1])]),
                            ints("pads", &pads),
                        ],
                    );
                }
                true
            }
            tflite::BuiltinOperator::RESIZE_BILINEAR => {
                let (x, _) = node_input(0)?;
                let size = int_const(1)?;
                let opt = op.builtin_options_as_resize_bilinear_options();
                let mode = match opt.map(|o| (o.align_corners(), o.half_pixel_centers())) {
                    Some((true, _)) => Sampling::AlignCorners,
                    Some((false, true)) => Sampling::HalfPixel,
                    _ => Sampling::Asymmetric,
                };
                let [oh, ow] = size[..] else {
                    return Err(unsupported(format!("size {size:?}")));
                };
                let [_, h, w, _] = shape_of(&tensor(op_inputs[0])?)[..] else {
                    return Err(unsupported("an input that is not NHWC".into()));
                };
                let (oh, ow) = (usize::try_from(oh), usize::try_from(ow));
                let (Ok(oh), Ok(ow)) = (oh, ow) else {
                    return Err(unsupported(format!("size {size:?}")));
                };
                // Columns: [1, C, H, W] x [W, OW]; rows: [OH, H] x [1, C, H, OW].
                let (cols, rows) = (format!("{out_name}.columns"), format!("{out_name}.rows"));
                let columns = transposed(&interpolation(w, ow, mode), ow, w);
                b.constant(&cols, &[w as i64, ow as i64], columns);
                b.constant(&rows, &[oh as i64, h as i64], interpolation(h, oh, mode));
                let resized_columns = format!("{out_name}.resized_columns");
                b.node(
                    "MatMul",
                    &resized_columns,
                    &[&x, &cols],
                    &resized_columns,
                    vec![],
                );
                b.node(
                    "MatMul",
                    &out_name,
                    &[&rows, &resized_columns],
                    &out_name,
                    vec![],
                );
                true
            }
            tflite::BuiltinOperator::RESHAPE => {
                let (mut x, nx) = node_input(0)?;
                if nx {
                    let tname = format!("{out_name}.nhwc");
                    b.node(
                        "Transpose",
                        &tname,
                        &[&x],
                        &tname,
                        vec![ints("perm", &[0, 2, 3, 1])],
                    );
                    x = tname;
                }
                if out_shape.len() == 4 {
                    return Err(unsupported("a reshape to 4-D is not handled".into()));
                }
                let sname = format!("{out_name}.shape");
                let dims: Vec<i64> = out_shape.iter().map(|&v| v as i64).collect();
                b.constant_i64(&sname, &dims);
                b.node("Reshape", &out_name, &[&x, &sname], &out_name, vec![]);
                false
            }
            tflite::BuiltinOperator::CONCATENATION => {
                let opt = op
                    .builtin_options_as_concatenation_options()
                    .ok_or_else(|| unsupported("no options".into()))?;
                activation = opt.fused_activation_function();
                let mut names = Vec::new();
                let mut layout = None;
                for k in 0..op_inputs.len() {
                    let (x, nx) = node_input(k)?;
                    if layout.is_some_and(|l| l != nx) {
                        return Err(unsupported("inputs of different layouts".into()));
                    }
                    layout = Some(nx);
                    names.push(x);
                }
                let nchw = layout.unwrap_or(false);
                let rank = out_shape.len() as i32;
                let mut axis = opt.axis();
                if axis < 0 {
                    axis += rank;
                }
                if !(0..rank).contains(&axis) {
                    return Err(unsupported(format!("axis {}", opt.axis())));
                }
                let axis = if nchw {
                    NHWC_TO_NCHW_AXIS[axis as usize] as i64
                } else {
                    i64::from(axis)
                };
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                b.node(
                    "Concat",
                    &out_name,
                    &refs,
                    &out_name,
                    vec![int("axis", axis)],
                );
                nchw
            }
            other => {
                return Err(TfliteError::Unsupported {
                    index,
                    op: format!("{other:?}"),
                    reason: "operator not handled by this converter".into(),
                });
            }
        };
        let final_name = match activation {
            tflite::ActivationFunctionType::NONE => out_name.clone(),
            tflite::ActivationFunctionType::RELU => {
                let pre = format!("{out_name}.pre");
                rename_last_output(&mut b, &pre);
                b.node("Relu", &out_name, &[&pre], &out_name, vec![]);
                out_name.clone()
            }
            other => return Err(unsupported(format!("fused activation {other:?}"))),
        };
        values.insert(
            out_index,
            Value::Node {
                name: final_name,
                nchw: produced,
            },
        );
    }

    let outs = subgraph.outputs().ok_or_else(|| malformed("no outputs"))?;
    if let Some(names) = output_names
        && names.len() != outs.len()
    {
        return Err(TfliteError::Malformed(format!(
            "{} output names for {} outputs",
            names.len(),
            outs.len()
        )));
    }
    let mut outputs = Vec::new();
    let mut graph_outputs = Vec::new();
    for (k, i) in outs.iter().enumerate() {
        let t = tensor(i)?;
        let shape = shape_of(&t);
        let Some(Value::Node { name, nchw }) = values.get(&i).cloned() else {
            return Err(TfliteError::Malformed(format!(
                "output {k} is not computed"
            )));
        };
        if nchw {
            return Err(TfliteError::Malformed(format!(
                "output {k} is a 4-D activation; only flattened outputs are handled"
            )));
        }
        let wanted =
            output_names.map_or_else(|| t.name().unwrap_or("").to_string(), |n| n[k].to_string());
        b.node("Identity", &wanted, &[&name], &wanted, vec![]);
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        graph_outputs.push(value_info(&wanted, &dims));
        outputs.push((wanted, shape));
    }
    let graph = pb::GraphProto {
        name: "tflite".into(),
        node: b.nodes,
        initializer: b.initializers,
        input: vec![value_info(
            crate::onnx::INPUT_NAME,
            &input_shape.map(|d| d as i64),
        )],
        output: graph_outputs,
        ..Default::default()
    };
    let model = pb::ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "emotion-train convert-detector".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        ..Default::default()
    };
    Ok(Converted {
        model,
        input_shape,
        outputs,
    })
}

/// The channel count (last dimension) of an NHWC tensor.
fn in_channels(
    t: &tflite::Tensor<'_>,
    shape_of: &dyn Fn(&tflite::Tensor<'_>) -> Vec<usize>,
) -> Result<usize, TfliteError> {
    match shape_of(t)[..] {
        [_, _, _, c] => Ok(c),
        ref s => Err(TfliteError::Malformed(format!(
            "tensor {:?} of shape {s:?} is not NHWC",
            t.name().unwrap_or("")
        ))),
    }
}

/// Renames the output of the last node written (to insert a fused activation after it).
fn rename_last_output(b: &mut Builder, to: &str) {
    if let Some(n) = b.nodes.last_mut() {
        n.output = vec![to.to_string()];
        n.name = to.to_string();
    }
}

/// ONNX `[top, left, bottom, right]` pads for TFLite's `SAME` or `VALID` padding of an
/// `input` (H, W) with `kernel` size, strides and dilations.
fn pads(
    padding: tflite::Padding,
    input: (usize, usize),
    kernel: [usize; 2],
    strides: [i32; 2],
    dilations: [i32; 2],
) -> Result<[i64; 4], String> {
    match padding {
        tflite::Padding::VALID => Ok([0; 4]),
        tflite::Padding::SAME => {
            let one = |len: usize, k: usize, s: i32, d: i32| -> Result<(i64, i64), String> {
                if s < 1 || d < 1 {
                    return Err(format!("stride {s} / dilation {d}"));
                }
                let (len, k, s, d) = (len as i64, k as i64, i64::from(s), i64::from(d));
                let out = (len + s - 1) / s;
                let total = ((out - 1) * s + (k - 1) * d + 1 - len).max(0);
                Ok((total / 2, total - total / 2))
            };
            let (t, bo) = one(input.0, kernel[0], strides[0], dilations[0])?;
            let (l, r) = one(input.1, kernel[1], strides[1], dilations[1])?;
            Ok([t, l, bo, r])
        }
        other => Err(format!("padding {other:?}")),
    }
}

/// Where a bilinear resize samples its input (TFLite's `align_corners` and
/// `half_pixel_centers`, ONNX's `coordinate_transformation_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sampling {
    /// The corner pixels of input and output coincide.
    AlignCorners,
    /// Pixel centres at half-integers.
    HalfPixel,
    /// Output pixel `o` samples input coordinate `o * in / out`.
    Asymmetric,
}

/// The `[out, input]` row-major matrix of a linear resize along one axis: each output point the
/// two input points around its sampling coordinate, weighted by distance, the coordinate
/// clamped to the input (edge pixels repeat).
fn interpolation(input: usize, out: usize, mode: Sampling) -> Vec<f32> {
    let (n, m) = (input as f64, out as f64);
    let last = input.saturating_sub(1);
    let mut matrix = vec![0.0f32; out * input];
    for (o, row) in matrix.chunks_exact_mut(input.max(1)).enumerate() {
        let o = o as f64;
        let at = match mode {
            Sampling::AlignCorners if out > 1 => o * (n - 1.0) / (m - 1.0),
            Sampling::AlignCorners => 0.0,
            Sampling::HalfPixel => (o + 0.5) * n / m - 0.5,
            Sampling::Asymmetric => o * n / m,
        }
        .clamp(0.0, last as f64);
        let below = at.floor();
        let frac = at - below;
        let i = below as usize;
        row[i] += (1.0 - frac) as f32;
        row[(i + 1).min(last)] += frac as f32;
    }
    matrix
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_matrices_follow_each_sampling_mode() {
        let rows = |input, out, mode| -> Vec<Vec<f32>> {
            interpolation(input, out, mode)
                .chunks(input)
                .map(<[f32]>::to_vec)
                .collect()
        };
        // Half-pixel centres, 2 -> 4: the outer points repeat the edge pixels.
        assert_eq!(
            rows(2, 4, Sampling::HalfPixel),
            [[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]]
        );
        assert_eq!(
            rows(2, 3, Sampling::AlignCorners),
            [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
        );
        assert_eq!(
            rows(2, 4, Sampling::Asymmetric),
            [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.0, 1.0]]
        );
        // Every row sums to one at any scale.
        for (input, out) in [(6, 12), (12, 24), (24, 48), (5, 7)] {
            for mode in [
                Sampling::HalfPixel,
                Sampling::AlignCorners,
                Sampling::Asymmetric,
            ] {
                for row in rows(input, out, mode) {
                    assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{row:?}");
                }
            }
        }
    }

    #[test]
    fn same_padding_puts_the_odd_pixel_after() {
        // 64 -> 32 with a 3x3 stride-2 kernel: one pixel of padding, at the bottom/right.
        assert_eq!(
            pads(tflite::Padding::SAME, (64, 64), [3, 3], [2, 2], [1, 1]),
            Ok([0, 0, 1, 1])
        );
        // 5x5 stride 1 keeps the size: two on each side.
        assert_eq!(
            pads(tflite::Padding::SAME, (64, 64), [5, 5], [1, 1], [1, 1]),
            Ok([2, 2, 2, 2])
        );
        assert_eq!(
            pads(tflite::Padding::VALID, (64, 64), [2, 2], [2, 2], [1, 1]),
            Ok([0; 4])
        );
    }

    #[test]
    fn garbage_is_not_a_model() {
        assert!(matches!(
            convert(b"definitely not a flatbuffer", None),
            Err(TfliteError::Flatbuffer(_) | TfliteError::Malformed(_))
        ));
    }
}
