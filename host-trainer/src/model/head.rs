//! Classifier heads: what sits on the backbone's feature vector.

use super::graph::{GraphBuilder, Op};

/// A head: hidden fully connected layers with ReLU, optional dropout, then the class layer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HeadSpec {
    /// Widths of the hidden layers (the seed's head is `[256]`).
    pub hidden: Vec<i64>,
    /// Dropout before each fully connected layer (0 = none).
    pub dropout: f64,
}

impl HeadSpec {
    /// The seed's head: Dense 256 ReLU, Dense 7.
    pub fn seed() -> HeadSpec {
        HeadSpec {
            hidden: vec![256],
            dropout: 0.0,
        }
    }

    /// A single linear layer.
    pub fn linear() -> HeadSpec {
        HeadSpec {
            hidden: vec![],
            dropout: 0.0,
        }
    }

    /// Parses `linear` or a comma-separated list of hidden widths (`256`, `512,128`), with an
    /// optional `:dropout` suffix (`256:0.3`).
    pub fn parse(s: &str) -> Result<HeadSpec, String> {
        let (layers, dropout) = match s.split_once(':') {
            Some((l, d)) => (
                l,
                d.parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..1.0).contains(p))
                    .ok_or_else(|| format!("head dropout {d:?} must be a number in [0, 1)"))?,
            ),
            None => (s, 0.0),
        };
        let hidden = if layers.trim() == "linear" || layers.trim().is_empty() {
            vec![]
        } else {
            layers
                .split(',')
                .map(|w| {
                    w.trim()
                        .parse::<i64>()
                        .ok()
                        .filter(|w| *w > 0)
                        .ok_or_else(|| format!("head layer width {w:?} is not a positive integer"))
                })
                .collect::<Result<_, _>>()?
        };
        Ok(HeadSpec { hidden, dropout })
    }

    /// Adds the head after `features` (a `[B, C]` node) in block `head`; returns the logits.
    pub fn build(&self, g: &mut GraphBuilder, features: usize, classes: i64) -> usize {
        g.block("head");
        let mut x = features;
        for (i, &width) in self.hidden.iter().enumerate() {
            if self.dropout > 0.0 {
                x = g.add(
                    &format!("head/dropout{i}"),
                    Op::Dropout { p: self.dropout },
                    &[x],
                );
            }
            x = g.add(&format!("head/fc{i}"), Op::Linear { out: width }, &[x]);
            x = g.add(&format!("head/relu{i}"), Op::Relu, &[x]);
        }
        if self.dropout > 0.0 {
            x = g.add("head/dropout_out", Op::Dropout { p: self.dropout }, &[x]);
        }
        g.add("head/logits", Op::Linear { out: classes }, &[x])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_head_specs() {
        assert_eq!(HeadSpec::parse("256"), Ok(HeadSpec::seed()));
        assert_eq!(HeadSpec::parse("linear"), Ok(HeadSpec::linear()));
        let h = HeadSpec::parse("512,128:0.25").expect("parses");
        assert_eq!(h.hidden, vec![512, 128]);
        assert_eq!(h.dropout, 0.25);
        assert!(HeadSpec::parse("0").is_err());
        assert!(HeadSpec::parse("256:1.5").is_err());
    }
}
