//! systemd integration: readiness (`READY=1` once the model is loaded and the pipeline runs),
//! the watchdog (`WATCHDOG=1` from the frame loop, so a hung pipeline is restarted) and
//! `STOPPING=1` on the way out. Outside systemd (no `NOTIFY_SOCKET`) everything here is a
//! no-op.
//!
//! The frame loop beats on every iteration, including while a lost camera is retried (those
//! iterations sleep at most a second), so only a loop that is really stuck misses the
//! watchdog. A source that blocks inside a read (MJPEG on standard input with nothing
//! arriving) also stops the beats: with `rpicam-vid` feeding the pipe that means the camera
//! process hung, and a restart is the right answer.

use std::time::{Duration, Instant};

/// Tells systemd the service is ready.
pub fn notify_ready() {
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        tracing::warn!("cannot notify systemd of readiness: {e}");
    }
}

/// Tells systemd the service is stopping.
pub fn notify_stopping() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
}

/// Feeds systemd's watchdog at half its interval.
#[derive(Debug)]
pub struct Watchdog {
    interval: Option<Duration>,
    last: Option<Instant>,
}

impl Watchdog {
    /// The watchdog systemd asked for (`WATCHDOG_USEC` for this process), or an inactive one.
    pub fn from_env() -> Watchdog {
        let mut usec = 0u64;
        let interval = sd_notify::watchdog_enabled(false, &mut usec)
            .then(|| Duration::from_micros(usec / 2))
            .filter(|d| !d.is_zero());
        if let Some(d) = interval {
            tracing::info!("systemd watchdog: feeding every {d:?}");
        }
        Watchdog {
            interval,
            last: None,
        }
    }

    /// A watchdog that never notifies.
    pub fn inactive() -> Watchdog {
        Watchdog {
            interval: None,
            last: None,
        }
    }

    /// Whether systemd asked for a watchdog.
    pub fn is_active(&self) -> bool {
        self.interval.is_some()
    }

    /// Called from the frame loop: notifies when half the interval has passed since the last
    /// notification. Returns whether it notified.
    pub fn beat(&mut self, now: Instant) -> bool {
        let Some(interval) = self.interval else {
            return false;
        };
        if self.last.is_some_and(|t| now.duration_since(t) < interval) {
            return false;
        }
        self.last = Some(now);
        if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]) {
            tracing::warn!("cannot feed the systemd watchdog: {e}");
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inactive_watchdog_never_beats() {
        let mut w = Watchdog::inactive();
        assert!(!w.is_active());
        assert!(!w.beat(Instant::now()));
    }

    #[test]
    fn an_active_watchdog_beats_at_most_once_per_interval() {
        let mut w = Watchdog {
            interval: Some(Duration::from_secs(10)),
            last: None,
        };
        let t0 = Instant::now();
        assert!(w.beat(t0));
        assert!(!w.beat(t0 + Duration::from_secs(3)));
        assert!(w.beat(t0 + Duration::from_secs(11)));
    }
}
