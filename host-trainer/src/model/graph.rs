//! A small layer graph that every architecture is written in.
//!
//! One description serves three purposes: [`Network`] runs it with libtorch (training and
//! evaluation), the ONNX exporter walks it node by node, and parameter and MAC counts are read
//! off it. Nodes are in topological order; each names the block it belongs to, which is what
//! freezing and unfreezing work on, and its parameters live in the `VarStore` under
//! `<node name>.weight`, `.bias`, `.running_mean`, `.running_var`.

use tch::{Kind, Tensor, nn};

/// Shape of one activation, without the batch dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shape {
    /// Channels.
    pub c: i64,
    /// Height.
    pub h: i64,
    /// Width.
    pub w: i64,
}

/// What a node computes.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// The network input.
    Input,
    /// 2-D convolution. `pad` is `[top, left, bottom, right]` (asymmetric "same" padding of
    /// Keras models needs it).
    Conv {
        /// Output channels.
        out: i64,
        /// Kernel height and width.
        kernel: [i64; 2],
        /// Stride (both axes).
        stride: i64,
        /// Zero padding `[top, left, bottom, right]`.
        pad: [i64; 4],
        /// Groups (`in` channels for a depthwise convolution).
        groups: i64,
        /// Whether there is a bias.
        bias: bool,
    },
    /// Batch normalisation over channels.
    BatchNorm {
        /// Epsilon added to the variance.
        eps: f64,
    },
    /// Per-channel scale and shift (`y = x * weight + bias`), dlib's "affine" layer.
    Affine,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// Max pooling; `pad` as for `Conv`, padded with -inf.
    MaxPool {
        /// Window size.
        kernel: i64,
        /// Stride.
        stride: i64,
        /// Padding `[top, left, bottom, right]`.
        pad: [i64; 4],
    },
    /// Average pooling without padding.
    AvgPool {
        /// Window size.
        kernel: i64,
        /// Stride.
        stride: i64,
    },
    /// Element-wise sum of two inputs.
    Add,
    /// Element-wise sum of two inputs of possibly different shapes, dlib's `add_prev`: the
    /// output has the larger size on each axis and the smaller input counts as zero-padded at
    /// the end of its channels, rows and columns.
    AddPadded,
    /// Mean over height and width, then flattened to `[B, C]`.
    GlobalAvgPool,
    /// Fully connected layer on `[B, C]`.
    Linear {
        /// Output features.
        out: i64,
    },
    /// Dropout (identity at evaluation).
    Dropout {
        /// Drop probability.
        p: f64,
    },
}

/// One node of the graph.
#[derive(Debug, Clone)]
pub struct Node {
    /// Unique name; parameters are stored under it.
    pub name: String,
    /// The computation.
    pub op: Op,
    /// Indices of the input nodes.
    pub inputs: Vec<usize>,
    /// The block this node belongs to (freezing works per block).
    pub block: String,
    /// Output shape (without batch). For `GlobalAvgPool` and `Linear`, `h = w = 1`.
    pub shape: Shape,
}

/// A network description: nodes in topological order.
#[derive(Debug, Clone)]
pub struct Graph {
    /// The nodes; node 0 is the input.
    pub nodes: Vec<Node>,
    /// Index of the node whose output is the backbone's feature vector (`[B, C]`).
    pub features: usize,
    /// Index of the output node (logits).
    pub output: usize,
    /// Blocks in order from input to output.
    pub blocks: Vec<String>,
}

/// Builds a [`Graph`] one node at a time, tracking shapes and the current block.
#[derive(Debug)]
pub struct GraphBuilder {
    nodes: Vec<Node>,
    block: String,
    blocks: Vec<String>,
    features: Option<usize>,
}

impl GraphBuilder {
    /// A graph whose input has `shape`.
    pub fn new(shape: Shape) -> GraphBuilder {
        GraphBuilder {
            nodes: vec![Node {
                name: "input".into(),
                op: Op::Input,
                inputs: vec![],
                block: "input".into(),
                shape,
            }],
            block: "input".into(),
            blocks: vec![],
            features: None,
        }
    }

    /// Nodes added from now on belong to `block`.
    pub fn block(&mut self, block: &str) {
        self.block = block.to_string();
        if !self.blocks.iter().any(|b| b == block) {
            self.blocks.push(block.to_string());
        }
    }

    /// Output shape of node `i`.
    pub fn shape(&self, i: usize) -> Shape {
        self.nodes[i].shape
    }

    /// Adds a node and returns its index.
    pub fn add(&mut self, name: &str, op: Op, inputs: &[usize]) -> usize {
        let shape = self.infer(&op, inputs);
        debug_assert!(
            !self.nodes.iter().any(|n| n.name == name),
            "duplicate node name {name}"
        );
        self.nodes.push(Node {
            name: name.to_string(),
            op,
            inputs: inputs.to_vec(),
            block: self.block.clone(),
            shape,
        });
        self.nodes.len() - 1
    }

    /// Convolution with symmetric padding `pad`, no bias.
    pub fn conv(&mut self, name: &str, x: usize, out: i64, k: i64, stride: i64, pad: i64) -> usize {
        self.dense_conv(name, x, out, [k, stride, pad], false)
    }

    /// Convolution with symmetric padding `pad` and a bias.
    pub fn conv_biased(
        &mut self,
        name: &str,
        x: usize,
        out: i64,
        k: i64,
        stride: i64,
        pad: i64,
    ) -> usize {
        self.dense_conv(name, x, out, [k, stride, pad], true)
    }

    fn dense_conv(
        &mut self,
        name: &str,
        x: usize,
        out: i64,
        [k, stride, pad]: [i64; 3],
        bias: bool,
    ) -> usize {
        self.add(
            name,
            Op::Conv {
                out,
                kernel: [k, k],
                stride,
                pad: [pad; 4],
                groups: 1,
                bias,
            },
            &[x],
        )
    }

    /// Depthwise convolution (one filter per channel), symmetric padding, no bias.
    pub fn depthwise(&mut self, name: &str, x: usize, k: i64, stride: i64, pad: i64) -> usize {
        let c = self.shape(x).c;
        self.add(
            name,
            Op::Conv {
                out: c,
                kernel: [k, k],
                stride,
                pad: [pad; 4],
                groups: c,
                bias: false,
            },
            &[x],
        )
    }

    /// Batch norm with `eps`.
    pub fn bn(&mut self, name: &str, x: usize, eps: f64) -> usize {
        self.add(name, Op::BatchNorm { eps }, &[x])
    }

    /// ReLU.
    pub fn relu(&mut self, name: &str, x: usize) -> usize {
        self.add(name, Op::Relu, &[x])
    }

    /// Square max pooling with symmetric padding `pad`.
    pub fn max_pool(&mut self, name: &str, x: usize, kernel: i64, stride: i64, pad: i64) -> usize {
        self.add(
            name,
            Op::MaxPool {
                kernel,
                stride,
                pad: [pad; 4],
            },
            &[x],
        )
    }

    /// Marks node `x` as the backbone's feature vector (must be `[B, C]`).
    pub fn mark_features(&mut self, x: usize) {
        self.features = Some(x);
    }

    /// Finishes the graph with `output` as the logits.
    pub fn finish(self, output: usize) -> Graph {
        Graph {
            features: self.features.unwrap_or(output),
            output,
            blocks: self.blocks,
            nodes: self.nodes,
        }
    }

    fn infer(&self, op: &Op, inputs: &[usize]) -> Shape {
        let s = inputs
            .first()
            .map(|&i| self.nodes[i].shape)
            .unwrap_or(Shape { c: 0, h: 0, w: 0 });
        let out_len = |len: i64, pad: i64, k: i64, stride: i64| (len + pad - k) / stride + 1;
        match op {
            Op::Input => s,
            Op::Conv {
                out,
                kernel,
                stride,
                pad,
                ..
            } => Shape {
                c: *out,
                h: out_len(s.h, pad[0] + pad[2], kernel[0], *stride),
                w: out_len(s.w, pad[1] + pad[3], kernel[1], *stride),
            },
            Op::MaxPool {
                kernel,
                stride,
                pad,
            } => Shape {
                c: s.c,
                h: out_len(s.h, pad[0] + pad[2], *kernel, *stride),
                w: out_len(s.w, pad[1] + pad[3], *kernel, *stride),
            },
            Op::AvgPool { kernel, stride } => Shape {
                c: s.c,
                h: out_len(s.h, 0, *kernel, *stride),
                w: out_len(s.w, 0, *kernel, *stride),
            },
            Op::GlobalAvgPool => Shape { c: s.c, h: 1, w: 1 },
            Op::AddPadded => {
                let t = inputs.get(1).map_or(s, |&i| self.nodes[i].shape);
                Shape {
                    c: s.c.max(t.c),
                    h: s.h.max(t.h),
                    w: s.w.max(t.w),
                }
            }
            Op::Linear { out } => Shape {
                c: *out,
                h: 1,
                w: 1,
            },
            Op::BatchNorm { .. }
            | Op::Affine
            | Op::Relu
            | Op::Relu6
            | Op::Add
            | Op::Dropout { .. } => s,
        }
    }
}

impl Graph {
    /// Input shape.
    pub fn input_shape(&self) -> Shape {
        self.nodes[0].shape
    }

    /// Channels of node `i`'s first input (0 for the input node).
    pub fn in_channels(&self, i: usize) -> i64 {
        self.nodes[i]
            .inputs
            .first()
            .map(|&j| self.nodes[j].shape.c)
            .unwrap_or(0)
    }

    /// Number of learnable parameters (batch-norm running statistics excluded), per node.
    pub fn node_params(&self, i: usize) -> i64 {
        let n = &self.nodes[i];
        let in_c = self.in_channels(i);
        match &n.op {
            Op::Conv {
                out,
                kernel,
                groups,
                bias,
                ..
            } => out * (in_c / groups) * kernel[0] * kernel[1] + if *bias { *out } else { 0 },
            Op::BatchNorm { .. } | Op::Affine => 2 * n.shape.c,
            Op::Linear { out } => out * in_c + out,
            _ => 0,
        }
    }

    /// Learnable parameters of the whole graph.
    pub fn params(&self) -> i64 {
        (0..self.nodes.len()).map(|i| self.node_params(i)).sum()
    }

    /// Multiply-accumulates for one image (convolutions and linear layers).
    pub fn macs(&self) -> i64 {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let in_c = self.in_channels(i);
                match &n.op {
                    Op::Conv {
                        out,
                        kernel,
                        groups,
                        ..
                    } => out * (in_c / groups) * kernel[0] * kernel[1] * n.shape.h * n.shape.w,
                    Op::Linear { out } => out * in_c,
                    _ => 0,
                }
            })
            .sum()
    }

    /// Index of the block named `name`, if any.
    pub fn block_index(&self, name: &str) -> Option<usize> {
        self.blocks.iter().position(|b| b == name)
    }
}

/// Watches a [`Network`] run node by node: calibration records activation ranges through it,
/// quantization-aware training replaces convolutions and fake-quantizes activations.
pub trait NodeHook {
    /// Whether node `i` passes its first input through unchanged (a batch norm already folded
    /// into the convolution the hook computed).
    fn bypass(&mut self, _i: usize) -> bool {
        false
    }
    /// A replacement for what node `i` computes from its first input `x`, or `None` to run the
    /// node as usual.
    fn replace(&mut self, _net: &Network, _i: usize, _x: &Tensor) -> Option<Tensor> {
        None
    }
    /// Called with node `i`'s output; returns the value the graph continues with.
    fn output(&mut self, _i: usize, y: Tensor) -> Tensor {
        y
    }
}

/// The hook that changes nothing.
struct NoHook;

impl NodeHook for NoHook {}

/// A [`Graph`] with its parameters in a `VarStore`, runnable with libtorch.
#[derive(Debug)]
pub struct Network {
    /// The description.
    pub graph: Graph,
    /// Parameters of each node, in the order `weight`, `bias` (convolution, linear, affine) or
    /// `weight`, `bias`, `running_mean`, `running_var` (batch norm).
    pub params: Vec<Vec<Tensor>>,
    /// Blocks whose batch norm runs in evaluation mode even while training (frozen blocks).
    frozen_bn: Vec<bool>,
    /// For each node, the last node that reads its output (to free activations early).
    last_use: Vec<usize>,
}

impl Network {
    /// Creates the parameters of `graph` under `vs` with the usual initialisations.
    pub fn new(vs: &nn::Path, graph: Graph) -> Network {
        let mut params = Vec::with_capacity(graph.nodes.len());
        for (i, node) in graph.nodes.iter().enumerate() {
            let p = vs / node.name.as_str();
            let in_c = graph.in_channels(i);
            let tensors = match &node.op {
                Op::Conv {
                    out,
                    kernel,
                    groups,
                    bias,
                    ..
                } => {
                    let fan_in = (in_c / groups) * kernel[0] * kernel[1];
                    let w = p.var(
                        "weight",
                        &[*out, in_c / groups, kernel[0], kernel[1]],
                        nn::Init::Kaiming {
                            dist: nn::init::NormalOrUniform::Normal,
                            fan: nn::init::FanInOut::FanIn,
                            non_linearity: nn::init::NonLinearity::ReLU,
                        },
                    );
                    let mut t = vec![w];
                    if *bias {
                        let bound = 1.0 / (fan_in as f64).sqrt();
                        t.push(p.var(
                            "bias",
                            &[*out],
                            nn::Init::Uniform {
                                lo: -bound,
                                up: bound,
                            },
                        ));
                    }
                    t
                }
                Op::BatchNorm { .. } => vec![
                    p.var("weight", &[node.shape.c], nn::Init::Const(1.0)),
                    p.var("bias", &[node.shape.c], nn::Init::Const(0.0)),
                    p.zeros_no_train("running_mean", &[node.shape.c]),
                    p.ones_no_train("running_var", &[node.shape.c]),
                ],
                Op::Affine => vec![
                    p.var("weight", &[node.shape.c], nn::Init::Const(1.0)),
                    p.var("bias", &[node.shape.c], nn::Init::Const(0.0)),
                ],
                Op::Linear { out } => {
                    let bound = 1.0 / (in_c as f64).sqrt();
                    vec![
                        p.var(
                            "weight",
                            &[*out, in_c],
                            nn::Init::Uniform {
                                lo: -bound,
                                up: bound,
                            },
                        ),
                        p.var(
                            "bias",
                            &[*out],
                            nn::Init::Uniform {
                                lo: -bound,
                                up: bound,
                            },
                        ),
                    ]
                }
                _ => vec![],
            };
            debug_assert_eq!(i, params.len());
            params.push(tensors);
        }
        let mut last_use: Vec<usize> = (0..graph.nodes.len()).collect();
        for (i, node) in graph.nodes.iter().enumerate() {
            for &j in &node.inputs {
                last_use[j] = last_use[j].max(i);
            }
        }
        last_use[graph.output] = usize::MAX;
        last_use[graph.features] = usize::MAX;
        Network {
            frozen_bn: vec![false; graph.blocks.len()],
            graph,
            params,
            last_use,
        }
    }

    /// Logits `[B, classes]` for `x` `[B, C, H, W]` (already preprocessed).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.run(x, train, self.graph.output, 0)
    }

    /// The backbone's feature vector `[B, C]`.
    pub fn features_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.run(x, train, self.graph.features, 0)
    }

    /// Runs the head only: from a features tensor to logits.
    pub fn head_t(&self, features: &Tensor, train: bool) -> Tensor {
        self.run(features, train, self.graph.output, self.graph.features)
    }

    /// Logits for `x` with `hook` watching (and possibly replacing) what every node computes:
    /// calibration records activation ranges this way, quantization-aware training simulates
    /// int8 arithmetic.
    pub fn forward_hooked(&self, x: &Tensor, train: bool, hook: &mut dyn NodeHook) -> Tensor {
        self.run_hooked(x, train, self.graph.output, 0, hook)
    }

    /// Runs nodes after `start` (whose output is `x`) up to `stop`.
    fn run(&self, x: &Tensor, train: bool, stop: usize, start: usize) -> Tensor {
        self.run_hooked(x, train, stop, start, &mut NoHook)
    }

    fn run_hooked(
        &self,
        x: &Tensor,
        train: bool,
        stop: usize,
        start: usize,
        hook: &mut dyn NodeHook,
    ) -> Tensor {
        let n = self.graph.nodes.len();
        let mut acts: Vec<Option<Tensor>> = (0..n).map(|_| None).collect();
        acts[start] = Some(hook.output(start, x.shallow_clone()));
        for i in start + 1..=stop {
            let node = &self.graph.nodes[i];
            let input = |k: usize| -> &Tensor {
                acts[node.inputs[k]]
                    .as_ref()
                    .unwrap_or_else(|| panic!("node {} reads a freed or skipped input", node.name))
            };
            let p = &self.params[i];
            if matches!(node.op, Op::Input) {
                continue;
            }
            let replaced = if hook.bypass(i) {
                Some(input(0).shallow_clone())
            } else {
                hook.replace(self, i, input(0))
            };
            let y = if let Some(y) = replaced {
                y
            } else {
                match &node.op {
                    Op::Input => continue,
                    Op::Conv {
                        stride,
                        pad,
                        groups,
                        ..
                    } => {
                        let x = input(0);
                        let (x, sym) = if pad[0] == pad[2] && pad[1] == pad[3] {
                            (x.shallow_clone(), [pad[0], pad[1]])
                        } else {
                            (x.constant_pad_nd([pad[1], pad[3], pad[0], pad[2]]), [0, 0])
                        };
                        x.conv2d(&p[0], p.get(1), [*stride, *stride], sym, [1, 1], *groups)
                    }
                    Op::BatchNorm { eps } => {
                        let block = self.graph.block_index(&node.block).unwrap_or(0);
                        let bn_train =
                            train && !self.frozen_bn.get(block).copied().unwrap_or(false);
                        input(0).batch_norm(
                            Some(&p[0]),
                            Some(&p[1]),
                            Some(&p[2]),
                            Some(&p[3]),
                            bn_train,
                            0.1,
                            *eps,
                            false,
                        )
                    }
                    Op::Affine => {
                        let c = node.shape.c;
                        input(0) * p[0].view([1, c, 1, 1]) + p[1].view([1, c, 1, 1])
                    }
                    Op::Relu => input(0).relu(),
                    Op::Relu6 => input(0).clamp(0.0, 6.0),
                    Op::MaxPool {
                        kernel,
                        stride,
                        pad,
                    } => {
                        let x = input(0);
                        let (x, sym) = if pad[0] == pad[2] && pad[1] == pad[3] {
                            (x.shallow_clone(), [pad[0], pad[1]])
                        } else {
                            (
                                x.pad(
                                    [pad[1], pad[3], pad[0], pad[2]],
                                    "constant",
                                    f64::NEG_INFINITY,
                                ),
                                [0, 0],
                            )
                        };
                        x.max_pool2d([*kernel, *kernel], [*stride, *stride], sym, [1, 1], false)
                    }
                    Op::AvgPool { kernel, stride } => input(0).avg_pool2d(
                        [*kernel, *kernel],
                        [*stride, *stride],
                        [0, 0],
                        false,
                        true,
                        None,
                    ),
                    Op::Add => input(0) + input(1),
                    Op::AddPadded => {
                        let c = node.shape;
                        let pad_to = |t: &Tensor| {
                            let z = t.size();
                            if z[1] == c.c && z[2] == c.h && z[3] == c.w {
                                t.shallow_clone()
                            } else {
                                t.constant_pad_nd([0, c.w - z[3], 0, c.h - z[2], 0, c.c - z[1]])
                            }
                        };
                        pad_to(input(0)) + pad_to(input(1))
                    }
                    Op::GlobalAvgPool => {
                        input(0).mean_dim([2i64, 3].as_slice(), false, Kind::Float)
                    }
                    Op::Linear { .. } => input(0).linear(&p[0], Some(&p[1])),
                    Op::Dropout { p: prob } => input(0).dropout(*prob, train),
                }
            };
            acts[i] = Some(hook.output(i, y));
            for &j in &node.inputs {
                if self.last_use[j] == i && j != start {
                    acts[j] = None;
                }
            }
        }
        acts[stop]
            .take()
            .unwrap_or_else(|| panic!("node {stop} produced no output"))
    }

    /// Freezes every block before `first_trainable` (parameters without gradients, batch norm
    /// in evaluation mode) and unfreezes the rest. `None` unfreezes everything.
    pub fn freeze_before(&mut self, first_trainable: Option<usize>) {
        let first = first_trainable.unwrap_or(0);
        for (b, frozen) in self.frozen_bn.iter_mut().enumerate() {
            *frozen = b < first;
        }
        for (i, node) in self.graph.nodes.iter().enumerate() {
            let b = self.graph.block_index(&node.block).unwrap_or(0);
            let trainable = b >= first;
            for (k, t) in self.params[i].iter_mut().enumerate() {
                let is_stat = matches!(node.op, Op::BatchNorm { .. }) && k >= 2;
                if !is_stat {
                    let _ = t.set_requires_grad(trainable);
                }
            }
        }
    }

    /// Trainable parameter count (tensors that require gradients).
    pub fn trainable_params(&self) -> i64 {
        self.params
            .iter()
            .flatten()
            .filter(|t| t.requires_grad())
            .map(|t| t.numel() as i64)
            .sum()
    }

    /// Parameters of the blocks from `first` on: what an optimizer should update, split into
    /// (backbone, head) where the head is everything after the feature node.
    pub fn trainable_groups(&self) -> (Vec<Tensor>, Vec<Tensor>) {
        let mut backbone = Vec::new();
        let mut head = Vec::new();
        for (i, ps) in self.params.iter().enumerate() {
            for t in ps {
                if t.requires_grad() {
                    if i > self.graph.features {
                        head.push(t.shallow_clone());
                    } else {
                        backbone.push(t.shallow_clone());
                    }
                }
            }
        }
        (backbone, head)
    }
}
