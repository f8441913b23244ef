//! Rate limits (the task's `throttle` block), on top of `governor`'s GCRA
//! limiter: a [`Limiter`] admits an amount (queries, rows, bytes) at a
//! steady rate per second, with a burst of at most 50 ms worth, so over any
//! window of a few seconds the measured rate is the setting.
//!
//! One limiter is shared (behind an `Arc`) by every COPY worker of a task,
//! so `full_*` limits hold for the task as a whole.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// A steady rate of some amount per second.
pub struct Limiter {
    inner: DefaultDirectRateLimiter,
    /// Amount one governor cell stands for (≥ 1), so the cell period never
    /// falls below 10 µs whatever the rate.
    unit: f64,
    /// Cells admitted at once at most.
    burst: u32,
    /// Amount taken but not yet a whole cell.
    carry: Mutex<f64>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("unit", &self.unit)
            .field("burst", &self.burst)
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// A limiter for `per_second` (a finite positive number).
    pub fn new(per_second: f64) -> Limiter {
        let unit = (per_second / 100_000.0).max(1.0);
        let cells_per_second = per_second / unit;
        let period = Duration::from_secs_f64(1.0 / cells_per_second).max(Duration::from_nanos(1));
        let burst = ((cells_per_second * 0.05) as u32).max(1);
        let quota = Quota::with_period(period)
            .expect("period is positive")
            .allow_burst(NonZeroU32::new(burst).expect("burst is at least 1"));
        Limiter {
            inner: RateLimiter::direct(quota),
            unit,
            burst,
            carry: Mutex::new(0.0),
        }
    }

    /// An optional limiter.
    pub fn optional(per_second: Option<f64>) -> Option<std::sync::Arc<Limiter>> {
        per_second.map(|r| std::sync::Arc::new(Limiter::new(r)))
    }

    /// Waits until `amount` more is allowed.
    pub async fn take(&self, amount: f64) {
        let mut cells = {
            let mut carry = self
                .carry
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *carry += amount / self.unit;
            let whole = carry.floor();
            *carry -= whole;
            whole as u64
        };
        while cells > 0 {
            let n = cells.min(u64::from(self.burst)) as u32;
            cells -= u64::from(n);
            if let Some(n) = NonZeroU32::new(n) {
                // n ≤ burst: never an insufficient-capacity error.
                let _ = self.inner.until_n_ready(n).await;
            }
        }
    }
}

/// Takes `amount` from `limiter` when there is one.
pub async fn take(limiter: Option<&std::sync::Arc<Limiter>>, amount: f64) {
    if let Some(l) = limiter {
        l.take(amount).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn admits_the_rate_over_a_window() {
        let l = Limiter::new(2000.0);
        let start = std::time::Instant::now();
        for _ in 0..1000 {
            l.take(1.0).await;
        }
        let secs = start.elapsed().as_secs_f64();
        // 1000 at 2000/s: 0.5 s, less the 50 ms burst.
        assert!((0.40..0.6).contains(&secs), "{secs}");
        // Large amounts (bytes) are admitted in burst-sized pieces.
        let l = Limiter::new(10e6);
        let start = std::time::Instant::now();
        for _ in 0..10 {
            l.take(500_000.0).await;
        }
        let secs = start.elapsed().as_secs_f64();
        assert!((0.40..0.6).contains(&secs), "{secs}");
    }
}
