//! Optimisers and the learning-rate schedule, written out so that parameter groups (a lower
//! learning rate for unfrozen backbone layers), weight decay and clipping are explicit.

use tch::Tensor;

/// Which optimiser (`--optimizer`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// Adam with decoupled weight decay (Loshchilov & Hutter).
    Adamw,
    /// SGD with Nesterov momentum 0.9 and L2 weight decay.
    Sgd,
}

/// A group of parameters sharing a learning-rate multiplier.
#[derive(Debug)]
pub struct Group {
    /// The parameters.
    pub params: Vec<Tensor>,
    /// Multiplier on the scheduled learning rate.
    pub lr_scale: f64,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

/// AdamW or SGD over parameter groups.
#[derive(Debug)]
pub struct Optimizer {
    kind: OptimizerKind,
    groups: Vec<Group>,
    weight_decay: f64,
    step: i64,
}

impl Optimizer {
    /// An optimiser over `groups` of `(params, lr_scale)`.
    pub fn new(kind: OptimizerKind, groups: Vec<(Vec<Tensor>, f64)>, weight_decay: f64) -> Self {
        let groups = groups
            .into_iter()
            .filter(|(p, _)| !p.is_empty())
            .map(|(params, lr_scale)| Group {
                m: params.iter().map(Tensor::zeros_like).collect(),
                v: params.iter().map(Tensor::zeros_like).collect(),
                params,
                lr_scale,
            })
            .collect();
        Optimizer {
            kind,
            groups,
            weight_decay,
            step: 0,
        }
    }

    /// Sets all gradients to zero.
    pub fn zero_grad(&mut self) {
        for g in &mut self.groups {
            for p in &mut g.params {
                let mut grad = p.grad();
                if grad.defined() {
                    let _ = grad.detach_().zero_();
                }
            }
        }
    }

    /// Scales gradients so their global L2 norm is at most `max_norm`; returns the norm before.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let mut total = 0.0;
        for g in &self.groups {
            for p in &g.params {
                let grad = p.grad();
                if grad.defined() {
                    total += f64::try_from(grad.pow_tensor_scalar(2).sum(tch::Kind::Float))
                        .unwrap_or(0.0);
                }
            }
        }
        let norm = total.sqrt();
        if max_norm > 0.0 && norm > max_norm {
            let scale = max_norm / (norm + 1e-6);
            for g in &mut self.groups {
                for p in &mut g.params {
                    let mut grad = p.grad();
                    if grad.defined() {
                        let _ = grad.g_mul_scalar_(scale);
                    }
                }
            }
        }
        norm
    }

    /// One update with base learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let t = self.step as f64;
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let wd = self.weight_decay;
        let kind = self.kind;
        tch::no_grad(|| {
            for g in &mut self.groups {
                let lr = lr * g.lr_scale;
                for ((p, m), v) in g.params.iter_mut().zip(&mut g.m).zip(&mut g.v) {
                    let grad = p.grad();
                    if !grad.defined() {
                        continue;
                    }
                    match kind {
                        OptimizerKind::Adamw => {
                            if wd > 0.0 {
                                let _ = p.g_mul_scalar_(1.0 - lr * wd);
                            }
                            let _ = m.g_mul_scalar_(b1).g_add_(&(&grad * (1.0 - b1)));
                            let _ = v.g_mul_scalar_(b2).g_add_(&(grad.square() * (1.0 - b2)));
                            let m_hat = &*m / (1.0 - b1.powf(t));
                            let v_hat = &*v / (1.0 - b2.powf(t));
                            let update = m_hat / (v_hat.sqrt() + eps) * lr;
                            let _ = p.g_sub_(&update);
                        }
                        OptimizerKind::Sgd => {
                            let d = if wd > 0.0 { &grad + &*p * wd } else { grad };
                            let _ = m.g_mul_scalar_(0.9).g_add_(&d);
                            // Nesterov: step along d + momentum * buffer.
                            let update = (d + &*m * 0.9) * lr;
                            let _ = p.g_sub_(&update);
                        }
                    }
                }
            }
        });
    }

    /// Optimiser state (moments) for resuming, with stable names.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("step".to_string(), Tensor::from(self.step))];
        for (gi, g) in self.groups.iter().enumerate() {
            for (pi, (m, v)) in g.m.iter().zip(&g.v).enumerate() {
                out.push((format!("g{gi}.p{pi}.m"), m.shallow_clone()));
                out.push((format!("g{gi}.p{pi}.v"), v.shallow_clone()));
            }
        }
        out
    }

    /// Restores what [`Optimizer::state`] saved; names that do not match are an error.
    pub fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<(), String> {
        let find = |name: &str| state.iter().find(|(n, _)| n == name).map(|(_, t)| t);
        self.step = find("step")
            .and_then(|t| i64::try_from(t).ok())
            .ok_or("optimizer state has no step")?;
        tch::no_grad(|| {
            for (gi, g) in self.groups.iter_mut().enumerate() {
                for (pi, (m, v)) in g.m.iter_mut().zip(&mut g.v).enumerate() {
                    let sm = find(&format!("g{gi}.p{pi}.m"));
                    let sv = find(&format!("g{gi}.p{pi}.v"));
                    match (sm, sv) {
                        (Some(sm), Some(sv)) if sm.size() == m.size() && sv.size() == v.size() => {
                            m.copy_(sm);
                            v.copy_(sv);
                        }
                        _ => {
                            return Err(format!(
                                "optimizer state does not match the model (group {gi}, parameter {pi})"
                            ));
                        }
                    }
                }
            }
            Ok(())
        })
    }
}

/// Cosine decay to zero with linear warm-up, over `total` steps.
pub fn cosine_lr(base: f64, step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        return base * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / span as f64).min(1.0);
    base * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn schedule_warms_up_then_decays() {
        assert!((cosine_lr(1.0, 0, 10, 100) - 0.1).abs() < 1e-12);
        assert!((cosine_lr(1.0, 9, 10, 100) - 1.0).abs() < 1e-12);
        assert!((cosine_lr(1.0, 10, 10, 100) - 1.0).abs() < 1e-12);
        assert!(cosine_lr(1.0, 55, 10, 100) < 0.6);
        assert!(cosine_lr(1.0, 100, 10, 100) < 1e-12);
    }

    #[test]
    fn both_optimizers_minimise_a_quadratic() {
        for kind in [OptimizerKind::Adamw, OptimizerKind::Sgd] {
            let x = Tensor::from_slice(&[3.0f32, -2.0]).set_requires_grad(true);
            let mut opt = Optimizer::new(kind, vec![(vec![x.shallow_clone()], 1.0)], 0.0);
            for _ in 0..300 {
                opt.zero_grad();
                let loss = (&x - Tensor::from_slice(&[1.0f32, 1.0]))
                    .square()
                    .sum(Kind::Float);
                loss.backward();
                opt.step(0.05);
            }
            let err = f64::try_from((&x - Tensor::from_slice(&[1.0f32, 1.0])).abs().max())
                .expect("scalar");
            assert!(err < 0.05, "{kind:?} ended {err} away");
        }
    }

    #[test]
    fn clipping_bounds_the_gradient_norm() {
        let x = Tensor::from_slice(&[3.0f32, 4.0]).set_requires_grad(true);
        let mut opt = Optimizer::new(
            OptimizerKind::Sgd,
            vec![(vec![x.shallow_clone()], 1.0)],
            0.0,
        );
        (&x * &x).sum(Kind::Float).backward(); // grad = (6, 8), norm 10
        let before = opt.clip_grad_norm(1.0);
        assert!((before - 10.0).abs() < 1e-4);
        let after = f64::try_from(x.grad().norm()).expect("scalar");
        assert!((after - 1.0).abs() < 1e-3, "{after}");
    }
}
