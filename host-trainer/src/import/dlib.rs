//! dlib's face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`, CC0) onto our
//! `dlib-resnet29`, from dlib's own binary serialisation (see `testdata/dlib/FORMAT.md`):
//!
//! - integers: a control byte (bit 7 the sign, low 4 bits the byte count 1..8) and the
//!   magnitude little-endian; floats: two such integers, mantissa then exponent
//!   (`m * 2^e`; exponents 32000..32002 are +inf, -inf and NaN); strings: length and bytes;
//!   bools: ASCII `'1'`/`'0'`; tensors: version 2, `n k nr nc`, then raw little-endian f32;
//! - the file: the loss layer (`loss_metric_2`, margin, distance threshold), the version
//!   numbers of all 130 layer wrappers top to bottom (1 for tag/skip, 2 for a layer, 3 for
//!   the layer on the input), the input layer (`input_rgb_image_sized`: means and size),
//!   then every layer's details from the input up, each followed by dlib's training state,
//!   which is read and dropped.
//!
//! Convolution weights are OIHW as in libtorch, followed by the biases; affine layers hold
//! gamma then beta; the fully connected layer stores `[inputs][outputs]` (transposed here).
//! Every layer's geometry is checked against our graph; a file that ends early, has bytes
//! left over or any other layer is an error naming the byte offset.

use std::collections::BTreeMap;
use std::path::Path;

use tch::Tensor;

use super::{ImportError, Imported};
use crate::model::checkpoint::LoadedModel;
use crate::model::graph::Op;

/// One layer's details, bottom to top.
#[derive(Debug)]
enum Layer {
    Con {
        filters: i64,
        kernel: [i64; 2],
        stride: [i64; 2],
        pad: [i64; 2],
        params: Vec<f32>,
    },
    Affine {
        params: Vec<f32>,
    },
    Relu,
    AddPrev,
    Pool {
        max: bool,
        window: [i64; 2],
        stride: [i64; 2],
    },
    Fc {
        outputs: i64,
        inputs: i64,
        params: Vec<f32>,
    },
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn fail<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("byte {}: {what}", self.pos))
    }

    fn byte(&mut self) -> Result<u8, String> {
        match self.bytes.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => self.fail("the file ends early (truncated download?)"),
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.bytes.len() - self.pos < n {
            return self.fail(&format!(
                "needs {n} more bytes, the file ends early (truncated download?)"
            ));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn int(&mut self) -> Result<i64, String> {
        let control = self.byte()?;
        let n = usize::from(control & 0x0f);
        if control & 0x70 != 0 || n == 0 || n > 8 {
            return self.fail(&format!("0x{control:02x} is not a dlib integer"));
        }
        let mut magnitude = 0u64;
        for (k, &b) in self.take(n)?.iter().enumerate() {
            magnitude |= u64::from(b) << (8 * k);
        }
        let v = i64::try_from(magnitude).or_else(|_| self.fail("integer out of range"))?;
        Ok(if control & 0x80 != 0 { -v } else { v })
    }

    fn float(&mut self) -> Result<f64, String> {
        let mantissa = self.int()?;
        let exponent = self.int()?;
        Ok(match exponent {
            32000 => f64::INFINITY,
            32001 => f64::NEG_INFINITY,
            32002 => f64::NAN,
            e if (-1100..=1100).contains(&e) => mantissa as f64 * 2f64.powi(e as i32),
            _ => return self.fail("float exponent out of range"),
        })
    }

    fn bool(&mut self) -> Result<bool, String> {
        match self.byte()? {
            b'1' => Ok(true),
            b'0' => Ok(false),
            b => self.fail(&format!("0x{b:02x} is not a dlib bool")),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let n = self.int()?;
        if !(0..=256).contains(&n) {
            return self.fail(&format!("a string of {n} bytes"));
        }
        Ok(String::from_utf8_lossy(self.take(n as usize)?).into_owned())
    }

    fn expect_string(&mut self, want: &str) -> Result<(), String> {
        let at = self.pos;
        let got = self.string()?;
        if got == want {
            Ok(())
        } else {
            Err(format!("byte {at}: expected `{want}`, found `{got}`"))
        }
    }

    /// A tensor's values (shape checked by the caller through the count).
    fn tensor(&mut self) -> Result<Vec<f32>, String> {
        let version = self.int()?;
        if version != 2 {
            return self.fail(&format!("tensor version {version}, expected 2"));
        }
        let mut count = 1i64;
        for _ in 0..4 {
            let d = self.int()?;
            if !(0..=1 << 28).contains(&d) {
                return self.fail(&format!("tensor dimension {d}"));
            }
            count = count.saturating_mul(d);
        }
        if count > 1 << 28 {
            return self.fail(&format!("a tensor of {count} values"));
        }
        let raw = self.take(count as usize * 4)?;
        Ok(raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    fn alias_tensor(&mut self) -> Result<[i64; 4], String> {
        let version = self.int()?;
        if version != 1 {
            return self.fail(&format!("alias_tensor version {version}, expected 1"));
        }
        Ok([self.int()?, self.int()?, self.int()?, self.int()?])
    }

    /// dlib's training state after each layer: three bools, three tensors and, for the layer
    /// on the input (wrapper version 3), an integer.
    fn trailer(&mut self, on_input: bool) -> Result<(), String> {
        for _ in 0..3 {
            self.bool()?;
        }
        for _ in 0..3 {
            self.tensor()?;
        }
        if on_input {
            self.int()?;
        }
        Ok(())
    }

    fn layer(&mut self) -> Result<Layer, String> {
        let at = self.pos;
        let kind = self.string()?;
        Ok(match kind.as_str() {
            "con_4" => {
                let params = self.tensor()?;
                let filters = self.int()?;
                let kernel = [self.int()?, self.int()?];
                let stride = [self.int()?, self.int()?];
                let pad = [self.int()?, self.int()?];
                self.alias_tensor()?;
                self.alias_tensor()?;
                for _ in 0..4 {
                    self.float()?;
                }
                Layer::Con {
                    filters,
                    kernel,
                    stride,
                    pad,
                    params,
                }
            }
            "affine_" => {
                let params = self.tensor()?;
                self.alias_tensor()?;
                self.alias_tensor()?;
                let mode = self.int()?;
                if mode != 0 {
                    return self.fail(&format!("affine mode {mode}, expected 0 (per channel)"));
                }
                Layer::Affine { params }
            }
            "relu_" => Layer::Relu,
            "add_prev_" => Layer::AddPrev,
            "max_pool_2" | "avg_pool_2" => {
                let window = [self.int()?, self.int()?];
                let stride = [self.int()?, self.int()?];
                let pad = [self.int()?, self.int()?];
                if pad != [0, 0] {
                    return self.fail("padded pooling is not part of this network");
                }
                Layer::Pool {
                    max: kind == "max_pool_2",
                    window,
                    stride,
                }
            }
            "fc_2" => {
                let outputs = self.int()?;
                let inputs = self.int()?;
                let params = self.tensor()?;
                self.alias_tensor()?;
                self.alias_tensor()?;
                let bias_mode = self.int()?;
                if bias_mode != 1 {
                    return self.fail("an fc layer with a bias is not part of this network");
                }
                for _ in 0..4 {
                    self.float()?;
                }
                Layer::Fc {
                    outputs,
                    inputs,
                    params,
                }
            }
            other => {
                return Err(format!(
                    "byte {at}: layer `{other}` is not part of dlib's face-recognition ResNet"
                ));
            }
        })
    }
}

/// The parsed file: input means and layers bottom to top.
struct DlibNet {
    means: [f64; 3],
    size: [i64; 2],
    layers: Vec<Layer>,
}

fn parse(bytes: &[u8]) -> Result<DlibNet, String> {
    let mut r = Reader { bytes, pos: 0 };
    if r.int()? != 1 {
        return r.fail("not a dlib network file (loss layer version)");
    }
    r.expect_string("loss_metric_2")?;
    let _margin = r.float()?;
    let _threshold = r.float()?;
    // Wrapper versions, top to bottom: 1 for tag/skip, 2 for layers, 3 for the layer on the
    // input (which must be the last one).
    let mut layer_versions = Vec::new();
    for _ in 0..130 {
        let v = r.int()?;
        match v {
            1 => {}
            2 | 3 => layer_versions.push(v),
            _ => return r.fail(&format!("layer wrapper version {v}")),
        }
    }
    if layer_versions.last() != Some(&3) || layer_versions.iter().filter(|&&v| v == 3).count() != 1
    {
        return r.fail("the layer on the input is not last");
    }
    r.expect_string("input_rgb_image_sized")?;
    let means = [r.float()?, r.float()?, r.float()?];
    let size = [r.int()?, r.int()?];
    let mut layers = Vec::with_capacity(layer_versions.len());
    for (k, v) in layer_versions.iter().rev().enumerate() {
        let layer = r.layer()?;
        r.trailer(*v == 3)
            .map_err(|e| format!("after layer {k}: {e}"))?;
        layers.push(layer);
    }
    if r.pos != bytes.len() {
        return r.fail(&format!(
            "{} bytes left after the last layer",
            bytes.len() - r.pos
        ));
    }
    Ok(DlibNet {
        means,
        size,
        layers,
    })
}

/// Reads the dlib file `path` into the backbone of `model` (which must be `dlib-resnet29`).
pub fn import(path: &Path, model: &LoadedModel) -> Result<BTreeMap<String, Tensor>, ImportError> {
    let format = |reason: String| ImportError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| format(format!("cannot read: {e}")))?;
    let net = parse(&bytes).map_err(format)?;
    let want = emotion_shared::preprocess::PreprocessSpec::DLIB_RGB_MEAN;
    if net
        .means
        .iter()
        .zip(want)
        .any(|(a, b)| (*a - f64::from(b)).abs() > 1e-3)
        || net.size != [150, 150]
    {
        return Err(format(format!(
            "input means {:?} / size {:?} differ from dlib's face-recognition model",
            net.means, net.size
        )));
    }
    let graph = &model.net.graph;
    // Our parameter layers in graph order are dlib's bottom-to-top order.
    let ours: Vec<usize> = (0..=graph.features)
        .filter(|&i| {
            matches!(
                graph.nodes[i].op,
                Op::Conv { .. } | Op::Affine | Op::Linear { .. }
            )
        })
        .collect();
    let theirs: Vec<&Layer> = net
        .layers
        .iter()
        .filter(|l| {
            matches!(
                l,
                Layer::Con { .. } | Layer::Affine { .. } | Layer::Fc { .. }
            )
        })
        .collect();
    if ours.len() != theirs.len() {
        return Err(format(format!(
            "{} layers with parameters, the model has {}",
            theirs.len(),
            ours.len()
        )));
    }
    let pools = net
        .layers
        .iter()
        .filter(|l| matches!(l, Layer::Pool { .. }))
        .count();
    let adds = net
        .layers
        .iter()
        .filter(|l| matches!(l, Layer::AddPrev))
        .count();
    let relus = net
        .layers
        .iter()
        .filter(|l| matches!(l, Layer::Relu))
        .count();
    if pools != 6 || adds != 14 || relus != 29 {
        return Err(format(format!(
            "{pools} pooling, {adds} residual and {relus} ReLU layers; dlib's face-recognition \
             ResNet has 6, 14 and 29"
        )));
    }
    if let Some(Layer::Pool {
        max,
        window,
        stride,
    }) = net.layers.iter().find(|l| matches!(l, Layer::Pool { .. }))
        && (!*max || *window != [3, 3] || *stride != [2, 2])
    {
        return Err(format(
            "the first pooling is not a 3x3 stride-2 max pool".into(),
        ));
    }
    let mut imported = Imported::new(path, model);
    for (&i, layer) in ours.iter().zip(theirs) {
        let node = &graph.nodes[i];
        let name = &node.name;
        let mismatch = |what: String| format(format!("`{name}`: {what}"));
        match (&node.op, layer) {
            (
                Op::Conv {
                    out,
                    kernel,
                    stride,
                    pad,
                    ..
                },
                Layer::Con {
                    filters,
                    kernel: k,
                    stride: s,
                    pad: p,
                    params,
                },
            ) => {
                if filters != out || k != kernel || *s != [*stride; 2] || *p != [pad[0], pad[1]] {
                    return Err(mismatch(format!(
                        "the file has a convolution of {filters} filters {k:?} stride {s:?} pad \
                         {p:?}"
                    )));
                }
                let in_c = graph.in_channels(i);
                let w_len = (out * in_c * kernel[0] * kernel[1]) as usize;
                if params.len() != w_len + *out as usize {
                    return Err(mismatch(format!(
                        "{} parameters, expected {}",
                        params.len(),
                        w_len + *out as usize
                    )));
                }
                let w =
                    Tensor::from_slice(&params[..w_len]).view([*out, in_c, kernel[0], kernel[1]]);
                imported.insert(format!("{name}.weight"), w)?;
                imported.insert(format!("{name}.bias"), Tensor::from_slice(&params[w_len..]))?;
            }
            (Op::Affine, Layer::Affine { params }) => {
                let c = node.shape.c as usize;
                if params.len() != 2 * c {
                    return Err(mismatch(format!(
                        "{} affine values, expected {}",
                        params.len(),
                        2 * c
                    )));
                }
                imported.insert(format!("{name}.weight"), Tensor::from_slice(&params[..c]))?;
                imported.insert(format!("{name}.bias"), Tensor::from_slice(&params[c..]))?;
            }
            (
                Op::Linear { out },
                Layer::Fc {
                    outputs,
                    inputs,
                    params,
                },
            ) => {
                let in_c = graph.in_channels(i);
                if outputs != out || *inputs != in_c || params.len() as i64 != out * in_c {
                    return Err(mismatch(format!(
                        "the file has a {inputs}->{outputs} fc layer with {} values",
                        params.len()
                    )));
                }
                let w = Tensor::from_slice(params)
                    .view([in_c, *out])
                    .transpose(0, 1);
                imported.insert(format!("{name}.weight"), w)?;
                imported.insert(
                    format!("{name}.bias"),
                    Tensor::zeros([*out], (tch::Kind::Float, tch::Device::Cpu)),
                )?;
            }
            (op, layer) => {
                return Err(mismatch(format!(
                    "the model has {op:?} where the file has {}",
                    match layer {
                        Layer::Con { .. } => "a convolution",
                        Layer::Affine { .. } => "an affine layer",
                        _ => "a fully connected layer",
                    }
                )));
            }
        }
    }
    imported.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_floats_decode_as_dlib_writes_them() {
        let bytes = [
            0x01, 0x02, 0x01, 0x00, 0x02, 0x80, 0x12, 0x81, 0x1c, // 2, 0, 4736, -28
            0x03, 0x0a, 0xd7, 0xa3, 0x81, 0x1c, // 0.04f
            0x03, 0x62, 0x90, 0xf5, 0x81, 0x11, // 122.782f
        ];
        let mut r = Reader {
            bytes: &bytes,
            pos: 0,
        };
        assert_eq!(r.int().unwrap(), 2);
        assert_eq!(r.int().unwrap(), 0);
        assert_eq!(r.int().unwrap(), 4736);
        assert_eq!(r.int().unwrap(), -28);
        assert_eq!(r.float().unwrap() as f32, 0.04f32);
        assert_eq!(r.float().unwrap() as f32, 122.782f32);
        assert!(r.int().unwrap_err().contains("ends early"));
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        assert!(parse(b"").is_err());
        assert!(parse(&[0xff; 64]).is_err());
        let mut r = Reader {
            bytes: &[0x02, 0x01],
            pos: 0,
        };
        assert!(r.int().is_err());
    }
}
