//! Time as a device the runtime reads: [`SystemClock`] on a device, [`ManualClock`] in tests,
//! so what depends on time (the serial rate limit and re-open back-off, the display's update
//! rate, the synthetic camera's pacing, the model store's polling) is tested by moving time
//! forward instead of sleeping.
//!
//! Stage timings in the pipeline stay on [`Instant::now`]: they measure the real work.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A source of monotonic time that can also wait.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Instant;
    /// Waits `duration` (a [`ManualClock`] moves itself forward instead).
    fn sleep(&self, duration: Duration);
}

/// A clock shared by the parts of one pipeline.
pub type SharedClock = Arc<dyn Clock>;

/// The machine's monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// The system clock as a [`SharedClock`].
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// A clock that moves only when told to ([`ManualClock::advance`]) or when something sleeps
/// on it. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    start: Instant,
    elapsed: Arc<Mutex<Duration>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock standing at the moment it was made.
    pub fn new() -> Self {
        ManualClock {
            start: Instant::now(),
            elapsed: Arc::new(Mutex::new(Duration::ZERO)),
        }
    }

    /// Moves time forward by `duration`.
    pub fn advance(&self, duration: Duration) {
        let mut elapsed = self.elapsed.lock().unwrap_or_else(|e| e.into_inner());
        *elapsed += duration;
    }

    /// How far the clock has moved since it was made.
    pub fn elapsed(&self) -> Duration {
        *self.elapsed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This clock as a [`SharedClock`] (sharing its time).
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + self.elapsed()
    }

    fn sleep(&self, duration: Duration) {
        self.advance(duration);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_time_moves_only_when_told_and_clones_share_it() {
        let clock = ManualClock::new();
        let t0 = clock.now();
        let other = clock.shared();
        assert_eq!(other.now(), t0);
        clock.advance(Duration::from_secs(3));
        other.sleep(Duration::from_millis(250));
        assert_eq!(clock.now() - t0, Duration::from_millis(3250));
        assert_eq!(other.now(), clock.now());
    }
}
