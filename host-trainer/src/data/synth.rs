//! The synthetic data set: procedurally drawn faces (`emotion_shared::render`) written in the
//! FER2013 CSV layout, so that everything downstream reads it exactly like the real thing.
//!
//! Samples are split in file order like FER2013 (Training, then PublicTest, then
//! PrivateTest); sample `i` depends only on `(seed, i)`, so the same command always writes the
//! same bytes, and different splits never share a face.

use std::io::Write;
use std::path::Path;

use emotion_shared::render::{ClassProportions, SyntheticDataset};

use super::{DataError, FER_SIZE, FaceSet, Split};

/// Shares of Training, PublicTest and PrivateTest (FER2013: 80%, 10%, 10%).
pub const FER2013_SPLIT: [f64; 3] = [0.8, 0.1, 0.1];

/// Which split sample `i` of `count` falls in.
fn split_of(i: usize, count: usize, shares: [f64; 3]) -> Split {
    let total: f64 = shares.iter().sum();
    let train_end = (count as f64 * shares[0] / total).round() as usize;
    let public_end = (count as f64 * (shares[0] + shares[1]) / total).round() as usize;
    if i < train_end {
        Split::Training
    } else if i < public_end {
        Split::PublicTest
    } else {
        Split::PrivateTest
    }
}

/// Renders `count` faces into a [`FaceSet`], on all cores, calling `progress(done)` now and
/// then.
pub fn generate(
    count: usize,
    proportions: ClassProportions,
    seed: u64,
    shares: [f64; 3],
    progress: &(dyn Fn(usize) + Sync),
) -> FaceSet {
    let data = SyntheticDataset::new(count, proportions, seed);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(count.max(1));
    let chunk = count.div_ceil(threads.max(1)).max(1);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let parts: Vec<Vec<(u8, Vec<u8>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (data, done) = (&data, &done);
                s.spawn(move || {
                    let range = t * chunk..((t + 1) * chunk).min(count);
                    let mut out = Vec::with_capacity(range.len());
                    for i in range {
                        let (e, img) = data.sample(i);
                        debug_assert_eq!(img.dimensions(), (FER_SIZE as u32, FER_SIZE as u32));
                        out.push((e.index() as u8, img.into_raw()));
                        let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                        if d % 256 == 0 {
                            progress(d);
                        }
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut set = FaceSet::default();
    for (i, (label, pixels)) in parts.into_iter().flatten().enumerate() {
        set.pixels.extend_from_slice(&pixels);
        set.labels.push(label);
        set.splits.push(split_of(i, count, shares));
    }
    progress(count);
    set
}

/// Writes `set` as a FER2013 CSV (`emotion,pixels,Usage`).
pub fn write_csv(set: &FaceSet, path: &Path) -> Result<(), DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("csv.partial");
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let mut w = std::io::BufWriter::new(file);
    writeln!(w, "emotion,pixels,Usage").map_err(io)?;
    let mut line = String::with_capacity(FER_SIZE * FER_SIZE * 4);
    for i in 0..set.len() {
        line.clear();
        for (k, p) in set.image(i).iter().enumerate() {
            if k > 0 {
                line.push(' ');
            }
            push_u8(&mut line, *p);
        }
        writeln!(
            w,
            "{},{},{}",
            set.labels[i],
            line,
            set.splits[i].usage_name()
        )
        .map_err(io)?;
    }
    w.flush().map_err(io)?;
    drop(w);
    std::fs::rename(&tmp, path).map_err(io)
}

/// Appends the decimal text of a byte.
fn push_u8(line: &mut String, v: u8) {
    if v >= 100 {
        line.push(char::from(b'0' + v / 100));
    }
    if v >= 10 {
        line.push(char::from(b'0' + (v / 10) % 10));
    }
    line.push(char::from(b'0' + v % 10));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::OnBadRow;

    #[test]
    fn splits_follow_fer2013_order_and_shares() {
        let shares = FER2013_SPLIT;
        assert_eq!(split_of(0, 100, shares), Split::Training);
        assert_eq!(split_of(79, 100, shares), Split::Training);
        assert_eq!(split_of(80, 100, shares), Split::PublicTest);
        assert_eq!(split_of(90, 100, shares), Split::PrivateTest);
    }

    #[test]
    fn written_csv_reads_back_identically_and_deterministically() {
        let p = ClassProportions::FER2013_TRAIN;
        let a = generate(60, p, 5, FER2013_SPLIT, &|_| {});
        let b = generate(60, p, 5, FER2013_SPLIT, &|_| {});
        assert_eq!(a.content_hash(), b.content_hash());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("synth.csv");
        write_csv(&a, &path).expect("write");
        let back = super::super::fer_csv::load(&path, OnBadRow::Fail).expect("read back");
        assert_eq!(back.content_hash(), a.content_hash());
        assert_eq!(back.indices(Split::PrivateTest).len(), 6);
    }
}
