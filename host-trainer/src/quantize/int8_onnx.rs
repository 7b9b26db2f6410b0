//! The int8 ONNX model: `QLinearConv` convolutions, `QLinearMatMul` classifier, float
//! residual adds and pooling between `DequantizeLinear`/`QuantizeLinear` (see the module
//! documentation of [`super`]). Same input and output as the fp32 export: float
//! `[1, C, H, W]` in, float logits out.

use prost::Message as _;
use tch::Tensor;
use tract_onnx::pb::tensor_proto::DataType;

use super::plan::{ConvStep, FusedActivation, QuantPlan};
use super::{QParams, QuantError, WeightScales};
use crate::model::graph::{Graph, Network, Op};
use crate::onnx::builder::{
    Builder, conv_attributes, float_op, folded_conv, max_pool, model_proto, param, rank_of,
    subsample_for_pointwise, values,
};
use crate::onnx::{INPUT_NAME, OUTPUT_NAME, OnnxError};

/// Writes `net` as an int8 ONNX model with activation `ranges` (per node, from
/// [`super::calibrate::Calibration::ranges`]) and weight scales `weights`.
pub fn to_int8_onnx(
    net: &Network,
    plan: &QuantPlan,
    ranges: &[Option<(f32, f32)>],
    weights: WeightScales,
    producer_version: &str,
) -> Result<Vec<u8>, QuantError> {
    let model = tch::no_grad(|| {
        let mut w = Writer::new(net, ranges, weights);
        w.build(plan)?;
        let classes = net.graph.nodes[net.graph.output].shape.c;
        Ok::<_, QuantError>(model_proto(&net.graph, w.b, classes, producer_version))
    })?;
    Ok(model.encode_to_vec())
}

/// Symmetric `i8` weights and their scales (one, or one per output channel).
pub fn quantize_weights(w: &[f32], channels: usize, scales: WeightScales) -> (Vec<i8>, Vec<f32>) {
    let per = w.len() / channels.max(1);
    let scale_of = |chunk: &[f32]| {
        let m = chunk.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        if m > 0.0 { m / 127.0 } else { 1.0 }
    };
    let scale: Vec<f32> = match scales {
        WeightScales::PerTensor => vec![scale_of(w)],
        WeightScales::PerChannel => w.chunks(per.max(1)).map(scale_of).collect(),
    };
    let q = w
        .iter()
        .enumerate()
        .map(|(k, v)| {
            let s = if scale.len() == 1 {
                scale[0]
            } else {
                scale[k / per]
            };
            (v / s).round().clamp(-127.0, 127.0) as i8
        })
        .collect();
    (q, scale)
}

struct Writer<'a> {
    net: &'a Network,
    graph: &'a Graph,
    ranges: &'a [Option<(f32, f32)>],
    weights: WeightScales,
    b: Builder,
    ranks: Vec<usize>,
    /// Float ONNX value of each node, when one exists.
    float: Vec<Option<String>>,
    /// `u8` ONNX value of each node and its parameters, when one exists.
    quant: Vec<Option<(String, QParams)>>,
    /// Scale and zero-point initializers already written, by value name.
    qparams_written: std::collections::HashMap<String, (String, String)>,
}

impl<'a> Writer<'a> {
    fn new(net: &'a Network, ranges: &'a [Option<(f32, f32)>], weights: WeightScales) -> Self {
        let n = net.graph.nodes.len();
        Writer {
            net,
            graph: &net.graph,
            ranges,
            weights,
            b: Builder::default(),
            ranks: vec![4; n],
            float: vec![None; n],
            quant: vec![None; n],
            qparams_written: std::collections::HashMap::new(),
        }
    }

    fn name(&self, i: usize) -> &str {
        &self.graph.nodes[i].name
    }

    fn unsupported(&self, i: usize, reason: &str) -> QuantError {
        OnnxError::Unsupported {
            node: self.name(i).to_string(),
            reason: reason.to_string(),
        }
        .into()
    }

    /// Scalar scale and zero point constants for `q`, named after `value`.
    fn qparam_constants(&mut self, value: &str, q: QParams) -> (String, String) {
        if let Some(names) = self.qparams_written.get(value) {
            return names.clone();
        }
        let (s, z) = (format!("{value}.scale"), format!("{value}.zero_point"));
        self.qparams_written
            .insert(value.to_string(), (s.clone(), z.clone()));
        self.b.constant(&s, &[], vec![q.scale]);
        self.b
            .constant_raw(&z, &[], DataType::Uint8, vec![q.zero_point]);
        (s, z)
    }

    /// The `i8` weight, its scale (scalar, or one per output channel) and zero point as
    /// initializers of layer `name`; returns their names.
    fn weight_constants(
        &mut self,
        name: &str,
        dims: &[i64],
        wq: &[i8],
        wscale: &[f32],
    ) -> (String, String, String) {
        let (wn, ws, wz) = (
            format!("{name}.weight_i8"),
            format!("{name}.weight_scale"),
            format!("{name}.weight_zero_point"),
        );
        self.b.constant_raw(
            &wn,
            dims,
            DataType::Int8,
            wq.iter().map(|&v| v as u8).collect(),
        );
        let per_channel = [wscale.len() as i64];
        let sdims: &[i64] = if wscale.len() == 1 { &[] } else { &per_channel };
        self.b.constant(&ws, sdims, wscale.to_vec());
        self.b
            .constant_raw(&wz, sdims, DataType::Int8, vec![0u8; wscale.len()]);
        (wn, ws, wz)
    }

    fn range_params(&self, i: usize) -> Result<QParams, QuantError> {
        let (lo, hi) = self.ranges[i].ok_or_else(|| QuantError::NoRange(self.name(i).into()))?;
        Ok(QParams::from_range(lo, hi))
    }

    /// Node `j`'s value in float, dequantizing it if only the `u8` form exists.
    fn as_float(&mut self, j: usize) -> Result<String, QuantError> {
        if let Some(v) = &self.float[j] {
            return Ok(v.clone());
        }
        let Some((q, p)) = self.quant[j].clone() else {
            return Err(self.unsupported(j, "read before it is computed"));
        };
        let v = format!("{q}.dequantized");
        let (s, z) = self.qparam_constants(&q, p);
        let node = format!("{}.dequantize", self.name(j));
        self.b
            .node("DequantizeLinear", &node, &[&q, &s, &z], &v, vec![]);
        self.float[j] = Some(v.clone());
        Ok(v)
    }

    /// Node `j`'s value in `u8`, quantizing it with its calibrated range if needed.
    fn as_quant(&mut self, j: usize) -> Result<(String, QParams), QuantError> {
        if let Some(q) = &self.quant[j] {
            return Ok(q.clone());
        }
        let f = self.as_float(j)?;
        let p = self.range_params(j)?;
        let v = format!("{}.quantized", self.name(j));
        let (s, z) = self.qparam_constants(&v, p);
        let node = format!("{}.quantize", self.name(j));
        self.b
            .node("QuantizeLinear", &node, &[&f, &s, &z], &v, vec![]);
        self.quant[j] = Some((v.clone(), p));
        Ok((v, p))
    }

    fn input_of(&self, i: usize, k: usize) -> Result<usize, QuantError> {
        self.graph.nodes[i]
            .inputs
            .get(k)
            .copied()
            .ok_or_else(|| self.unsupported(i, &format!("has no input {k}")))
    }

    fn build(&mut self, plan: &QuantPlan) -> Result<(), QuantError> {
        let graph = self.graph;
        for i in 0..=graph.output {
            self.ranks[i] = rank_of(graph, &self.ranks, i);
            if plan.absorbed[i] {
                continue;
            }
            let node = &graph.nodes[i];
            let name = node.name.clone();
            match &node.op {
                Op::Input => {
                    self.float[i] = Some(INPUT_NAME.to_string());
                }
                Op::Conv { .. } => {
                    let step = plan.steps[i]
                        .clone()
                        .ok_or_else(|| self.unsupported(i, "a convolution outside the plan"))?;
                    self.conv(&step)?;
                }
                Op::MaxPool {
                    kernel,
                    stride,
                    pad,
                } if node
                    .inputs
                    .first()
                    .is_some_and(|&x| self.quant[x].is_some()) =>
                {
                    // The maximum commutes with the monotonic u8 mapping: pool in u8.
                    let Some((q, p)) = self.quant[self.input_of(i, 0)?].clone() else {
                        return Err(self.unsupported(i, "lost its u8 input"));
                    };
                    let v = format!("{name}.u8");
                    max_pool(&mut self.b, &name, &q, &v, *kernel, *stride, pad);
                    self.quant[i] = Some((v, p));
                }
                Op::MaxPool { .. }
                | Op::AvgPool { .. }
                | Op::Relu
                | Op::Relu6
                | Op::BatchNorm { .. }
                | Op::Affine
                | Op::AddPadded
                | Op::Add
                | Op::GlobalAvgPool => {
                    let inputs = (0..node.inputs.len())
                        .map(|k| self.input_of(i, k).and_then(|j| self.as_float(j)))
                        .collect::<Result<Vec<_>, _>>()?;
                    float_op(&mut self.b, self.net, i, self.ranks[i], &inputs, &name)?;
                    self.float[i] = Some(name.clone());
                }
                Op::Linear { out } => self.linear(i, *out)?,
                Op::Dropout { .. } => {
                    let x = self.input_of(i, 0)?;
                    self.float[i] = self.float[x].clone();
                    self.quant[i] = self.quant[x].clone();
                }
            }
        }
        if self.ranks[graph.output] != 2 {
            return Err(self.unsupported(graph.output, "the output is not a [1, classes] vector"));
        }
        let out = self.as_float(graph.output)?;
        self.b
            .node("Identity", "output.identity", &[&out], OUTPUT_NAME, vec![]);
        Ok(())
    }

    fn conv(&mut self, step: &ConvStep) -> Result<(), QuantError> {
        let i = step.conv;
        let Op::Conv {
            out,
            kernel,
            stride,
            pad,
            groups,
            ..
        } = self.graph.nodes[i].op.clone()
        else {
            return Err(self.unsupported(i, "not a convolution"));
        };
        if self.ranks[i] != 4 {
            return Err(self.unsupported(i, "convolution of a flattened value"));
        }
        let name = self.name(i).to_string();
        let (mut xq, xp) = self.as_quant(self.input_of(i, 0)?)?;
        let mut stride = stride;
        if let Some(sub) = subsample_for_pointwise(&mut self.b, &name, &xq, &kernel, stride, &pad) {
            xq = sub;
            stride = 1;
        }
        let (w, bias) = folded_conv(self.net, i, step.fold)?;
        let dims = w.size();
        let (wq, wscale) = quantize_weights(&values(&w, &name)?, out as usize, self.weights);
        let bias = values(&bias, &name)?;

        let (lo, hi) = self.ranges[step.result]
            .ok_or_else(|| QuantError::NoRange(self.name(step.result).into()))?;
        let yp = match step.activation {
            Some((_, FusedActivation::Relu)) => QParams::from_range(0.0, hi),
            Some((_, FusedActivation::Relu6)) => QParams::from_range(0.0, hi.min(6.0)),
            None => QParams::from_range(lo, hi),
        };

        let (wn, ws, wz) = self.weight_constants(&name, &dims, &wq, &wscale);
        let bn = format!("{name}.bias_i32");
        let qbias: Vec<u8> = bias
            .iter()
            .enumerate()
            .flat_map(|(o, &b)| {
                let s = xp.scale
                    * if wscale.len() == 1 {
                        wscale[0]
                    } else {
                        wscale[o]
                    };
                let v = (f64::from(b) / f64::from(s))
                    .round()
                    .clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32;
                v.to_le_bytes()
            })
            .collect();
        self.b.constant_raw(&bn, &[out], DataType::Int32, qbias);

        let result = step.result;
        let yv = format!("{}.u8", self.name(result));
        let (xs, xz) = self.qparam_constants(&format!("{name}.x"), xp);
        let (ys, yz) = self.qparam_constants(&yv, yp);
        self.b.node(
            "QLinearConv",
            &name,
            &[&xq, &xs, &xz, &wn, &ws, &wz, &ys, &yz, &bn],
            &yv,
            conv_attributes(kernel, stride, pad, groups),
        );
        self.ranks[result] = 4;
        self.quant[result] = Some((yv, yp));
        Ok(())
    }

    fn linear(&mut self, i: usize, out: i64) -> Result<(), QuantError> {
        let x = self.input_of(i, 0)?;
        if self.ranks[x] != 2 {
            return Err(self.unsupported(i, "a linear layer on an unflattened value"));
        }
        let name = self.name(i).to_string();
        let (aq, ap) = self.as_quant(x)?;
        let w: Tensor = param(self.net, i, 0, "weight")?;
        let bias = param(self.net, i, 1, "bias")?;
        // QLinearMatMul computes a @ b: the weight goes in transposed, [in, out].
        let wt = w.transpose(0, 1).contiguous();
        let dims = wt.size();
        let (wq, wscale) = quantize_weights(&values(&wt, &name)?, 1, WeightScales::PerTensor);
        let yp = self.range_params(i)?;

        let (wn, ws, wz) = self.weight_constants(&name, &dims, &wq, &wscale);
        let (as_, az) = self.qparam_constants(&format!("{name}.x"), ap);
        let yq = format!("{name}.u8");
        let (ys, yz) = self.qparam_constants(&yq, yp);
        self.b.node(
            "QLinearMatMul",
            &name,
            &[&aq, &as_, &az, &wn, &ws, &wz, &ys, &yz],
            &yq,
            vec![],
        );
        let yf = format!("{name}.matmul");
        self.b.node(
            "DequantizeLinear",
            &format!("{name}.dequantize"),
            &[&yq, &ys, &yz],
            &yf,
            vec![],
        );
        let bn = format!("{name}.bias");
        self.b.constant(&bn, &[out], values(&bias, &name)?);
        self.b.node(
            "Add",
            &format!("{name}.add_bias"),
            &[&yf, &bn],
            &name,
            vec![],
        );
        self.ranks[i] = 2;
        self.float[i] = Some(name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_quantize_symmetrically_per_tensor_and_per_channel() {
        let w = [0.6f32, -1.0, 0.25, 0.024, -0.04, 0.01];
        let (q, s) = quantize_weights(&w, 2, WeightScales::PerTensor);
        assert_eq!(s, vec![1.0 / 127.0]);
        assert_eq!(q[..3], [76, -127, 32]);
        let (q, s) = quantize_weights(&w, 2, WeightScales::PerChannel);
        assert_eq!(s.len(), 2);
        assert_eq!(q[3..], [76, -127, 32]);
        let (_, s) = quantize_weights(&[0.0; 4], 1, WeightScales::PerTensor);
        assert_eq!(s, vec![1.0]);
    }
}
