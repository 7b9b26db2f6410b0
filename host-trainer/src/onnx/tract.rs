//! A written ONNX model in tract, loaded and optimised exactly as the edge does it: what the
//! export's self-check, the self-test replay and the int8 accuracy measurements run.

use std::fmt;

use tract_onnx::prelude::*;

use super::OnnxError;

/// An ONNX model loaded and optimised by tract for a fixed `[1, C, H, W]` input.
pub struct TractModel {
    plan: std::sync::Arc<TypedRunnableModel>,
    input: [usize; 4],
}

impl fmt::Debug for TractModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TractModel")
            .field("input", &self.input)
            .finish_non_exhaustive()
    }
}

impl TractModel {
    /// Parses `onnx` and optimises it for `input` (the edge's loading path).
    pub fn load(onnx: &[u8], input: [usize; 4]) -> Result<TractModel, OnnxError> {
        let tract = |what: &str, e: TractError| OnnxError::Tract(format!("{what}: {e:#}"));
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut &onnx[..])
            .map_err(|e| tract("parsing the ONNX", e))?;
        model
            .set_input_fact(0, f32::fact(input).into())
            .map_err(|e| tract("setting the input shape", e))?;
        let plan = model
            .into_optimized()
            .map_err(|e| tract("optimising", e))?
            .into_runnable()
            .map_err(|e| tract("making the plan", e))?;
        Ok(TractModel { plan, input })
    }

    /// Median milliseconds of one run on a constant input, over `runs` runs after a few
    /// warm-up runs: what the int8 export records of fp32 against int8 speed. Timed on the
    /// current thread, as the edge runs it (tract uses one thread here).
    pub fn median_ms(&self, runs: usize) -> Result<f64, OnnxError> {
        let input = vec![0.5f32; self.input.iter().product()];
        for _ in 0..runs.clamp(1, 20) {
            self.run(&input)?;
        }
        let mut times: Vec<f64> = Vec::with_capacity(runs.max(1));
        for _ in 0..runs.max(1) {
            let t = std::time::Instant::now();
            self.run(&input)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    }

    /// The operators of the optimised plan, node by node, as tract names them
    /// (`DirectSpatialConv`, `OptMatMul`, `DepthWiseConv`, ...): what the exporter's forms are
    /// checked against.
    pub fn operators(&self) -> Vec<String> {
        self.plan
            .model()
            .nodes
            .iter()
            .map(|n| n.op.name().to_string())
            .collect()
    }

    /// How many depthwise convolutions tract's optimised plan runs channels-last (on
    /// `[.., H, W, C]`): what `conv_form`'s channels-last form is checked against.
    pub fn channels_last_depthwise(&self) -> usize {
        self.plan
            .model()
            .nodes
            .iter()
            .filter(|n| n.op.name() == "DepthWiseConv")
            .filter(|n| {
                // tract keeps the layout in the op's private shapes; its `Debug` spells them
                // `input_shape: NHWC 1,15,15,64 (strides: ..)`.
                let op = format!("{:?}", n.op);
                op.contains("input_shape: NHWC") || op.contains("input_shape: HWC")
            })
            .count()
    }

    /// Runs one preprocessed input (`C * H * W` floats, NCHW) and returns the flat output.
    pub fn run(&self, input: &[f32]) -> Result<Vec<f32>, OnnxError> {
        let tensor = tract_onnx::prelude::Tensor::from_shape(&self.input, input)
            .map_err(|e| OnnxError::Tract(format!("input tensor: {e:#}")))?;
        let out = self
            .plan
            .run(tvec!(tensor.into()))
            .map_err(|e| OnnxError::Tract(format!("running: {e:#}")))?;
        let first = out
            .first()
            .ok_or_else(|| OnnxError::Tract("the model returned no output".into()))?;
        let view = first
            .to_plain_array_view::<f32>()
            .map_err(|e| OnnxError::Tract(format!("output is not f32: {e:#}")))?;
        Ok(view.iter().copied().collect())
    }
}
