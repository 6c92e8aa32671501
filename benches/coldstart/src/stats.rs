//! Medians, percentiles and the table.

use std::time::Duration;

/// The `p`-th percentile (nearest rank) of `samples`.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn median(samples: &[Duration]) -> Duration {
    percentile(samples, 50.0)
}

pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=10).rev().map(Duration::from_millis).collect();
        assert_eq!(median(&samples), Duration::from_millis(5));
        assert_eq!(percentile(&samples, 90.0), Duration::from_millis(9));
        assert_eq!(percentile(&samples, 100.0), Duration::from_millis(10));
        assert_eq!(percentile(&[Duration::from_millis(3)], 90.0), Duration::from_millis(3));
        assert_eq!(median(&[]), Duration::ZERO);
    }
}
