//! Where a tract model spends its time, node by node (`emotion-edge bench --profile`): the
//! plan runs `runs` times on one input through tract's own evaluation hook, each node timed
//! around its `eval`, and the nodes are reported by total time, slowest first, with their
//! tract operator and output shape. This is what the exporter's graph forms were chosen with.

use std::fmt;
use std::time::{Duration, Instant};

use tract_onnx::prelude::*;

/// One node's share of the model's time.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeTime {
    /// The node's name in the optimised plan (the ONNX node name it came from, with suffixes).
    pub name: String,
    /// tract's operator, as tract names it (`OptMatMul`, `DepthWise`, `MaxPool`, ...).
    pub op: String,
    /// The shape of its first output.
    pub output: String,
    /// Median time per run, in milliseconds.
    pub median_ms: f64,
}

/// Per-node timings of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelProfile {
    /// Runs measured (after one warm-up run).
    pub runs: usize,
    /// Median of the whole plan's time per run (nodes and the plan's own bookkeeping), ms.
    pub total_ms: f64,
    /// The nodes, slowest first.
    pub nodes: Vec<NodeTime>,
}

impl ModelProfile {
    /// Times by operator kind, slowest first: `(op, ms per run, nodes)`.
    pub fn by_op(&self) -> Vec<(String, f64, usize)> {
        let mut ops: Vec<(String, f64, usize)> = Vec::new();
        for n in &self.nodes {
            match ops.iter_mut().find(|(op, _, _)| *op == n.op) {
                Some(entry) => {
                    entry.1 += n.median_ms;
                    entry.2 += 1;
                }
                None => ops.push((n.op.clone(), n.median_ms, 1)),
            }
        }
        ops.sort_by(|a, b| b.1.total_cmp(&a.1));
        ops
    }
}

/// Runs `plan` on `input` once to warm up, then `runs` times (at least one) timing every node.
pub fn profile(
    plan: &Arc<TypedRunnableModel>,
    input: &Tensor,
    runs: usize,
) -> TractResult<ModelProfile> {
    let runs = runs.max(1);
    let model = plan.model();
    let mut per_node: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); model.nodes.len()];
    let mut totals = Vec::with_capacity(runs);
    let mut state = TypedSimpleState::new(plan)?;
    state.run(tvec!(input.clone().into()))?;
    for _ in 0..runs {
        let start = Instant::now();
        state.run_plan_with_eval(
            tvec!(input.clone().into()),
            |session, op_state, node, inputs| {
                let t = Instant::now();
                let out = tract_onnx::tract_core::plan::eval(session, op_state, node, inputs);
                per_node[node.id].push(t.elapsed());
                out
            },
        )?;
        totals.push(start.elapsed());
    }
    let median = |mut d: Vec<Duration>| -> f64 {
        if d.is_empty() {
            return 0.0;
        }
        d.sort();
        d[d.len() / 2].as_secs_f64() * 1000.0
    };
    let mut nodes: Vec<NodeTime> = per_node
        .into_iter()
        .enumerate()
        .filter(|(_, times)| !times.is_empty())
        .map(|(id, times)| {
            let node = &model.nodes[id];
            NodeTime {
                name: node.name.clone(),
                op: node.op.name().to_string(),
                output: node
                    .outputs
                    .first()
                    .map(|o| format!("{:?}", o.fact.shape))
                    .unwrap_or_default(),
                median_ms: median(times),
            }
        })
        .collect();
    nodes.sort_by(|a, b| b.median_ms.total_cmp(&a.median_ms));
    Ok(ModelProfile {
        runs,
        total_ms: median(totals),
        nodes,
    })
}

impl fmt::Display for ModelProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes_ms: f64 = self.nodes.iter().map(|n| n.median_ms).sum();
        writeln!(
            f,
            "{:.3} ms per run (median of {}), {:.3} ms in {} nodes",
            self.total_ms,
            self.runs,
            nodes_ms,
            self.nodes.len()
        )?;
        writeln!(f, "by operator:")?;
        for (op, ms, count) in self.by_op() {
            writeln!(
                f,
                "  {op:<24} {ms:>8.3} ms {:>5.1}% ({count} nodes)",
                100.0 * ms / nodes_ms.max(f64::MIN_POSITIVE)
            )?;
        }
        write!(f, "slowest nodes:")?;
        for n in self.nodes.iter().take(25) {
            write!(
                f,
                "\n  {:>8.3} ms {:<24} {:<32} {}",
                n.median_ms, n.op, n.output, n.name
            )?;
        }
        Ok(())
    }
}
