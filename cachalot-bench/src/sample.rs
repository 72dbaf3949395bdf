//! Latency samples and their summaries (median, p99), in microseconds.

use std::time::Duration;

use serde::Serialize;

/// The latencies of one measured path, in the order they were taken.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    micros: Vec<f64>,
}

impl Samples {
    /// Records one latency.
    pub fn push(&mut self, elapsed: Duration) {
        self.micros.push(elapsed.as_secs_f64() * 1e6);
    }

    /// The recorded latencies, in µs.
    pub fn micros(&self) -> &[f64] {
        &self.micros
    }

    /// Median, p99 and mean.
    pub fn summary(&self) -> Summary {
        let mut sorted = self.micros.clone();
        sorted.sort_by(f64::total_cmp);
        let mean = if sorted.is_empty() {
            0.0
        } else {
            sorted.iter().sum::<f64>() / sorted.len() as f64
        };
        Summary {
            n: sorted.len(),
            median_us: quantile(&sorted, 0.5),
            p99_us: quantile(&sorted, 0.99),
            mean_us: mean,
        }
    }
}

/// The `q` quantile of sorted values (nearest rank); 0 when empty.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// What the report shows of a [`Samples`].
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    /// How many samples.
    pub n: usize,
    /// Median, µs.
    pub median_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Mean, µs.
    pub mean_us: f64,
}

/// One bucket of a latency histogram.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Bucket {
    /// Lower bound, µs.
    pub from_us: f64,
    /// Upper bound (excluded), µs.
    pub to_us: f64,
    /// Samples in it.
    pub count: usize,
}

/// A histogram over logarithmic buckets, `per_decade` buckets per power of ten, covering the
/// samples from the smallest to the largest.
pub fn log_histogram(micros: &[f64], per_decade: u32) -> Vec<Bucket> {
    let positive: Vec<f64> = micros.iter().copied().filter(|v| *v > 0.0).collect();
    let (Some(min), Some(max)) = (
        positive.iter().copied().reduce(f64::min),
        positive.iter().copied().reduce(f64::max),
    ) else {
        return Vec::new();
    };
    let step = 1.0 / f64::from(per_decade);
    let first = (min.log10() / step).floor() as i32;
    let last = (max.log10() / step).floor() as i32;
    let mut buckets: Vec<Bucket> = (first..=last)
        .map(|i| Bucket {
            from_us: 10f64.powf(f64::from(i) * step),
            to_us: 10f64.powf(f64::from(i + 1) * step),
            count: 0,
        })
        .collect();
    for v in positive {
        let i = ((v.log10() / step).floor() as i32 - first).clamp(0, last - first) as usize;
        buckets[i].count += 1;
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let mut s = Samples::default();
        for us in 1..=100 {
            s.push(Duration::from_micros(us));
        }
        let summary = s.summary();
        assert_eq!(summary.n, 100);
        assert!((summary.median_us - 50.0).abs() < 1e-6);
        assert!((summary.p99_us - 99.0).abs() < 1e-6);
        assert!((summary.mean_us - 50.5).abs() < 1e-6);
    }

    #[test]
    fn histogram_counts_every_sample() {
        let values = [1.0, 1.5, 2.0, 9.0, 10.0, 11.0, 120.0];
        let buckets = log_histogram(&values, 4);
        assert_eq!(buckets.iter().map(|b| b.count).sum::<usize>(), values.len());
        assert!(buckets[0].from_us <= 1.0 && buckets.last().is_some_and(|b| b.to_us > 120.0));
    }
}
