//! The Redis server's clock, followed from this host: read with `TIME` now and
//! then, carried forward in between by this host's monotonic clock, so that
//! the wall clocks of the hosts (which may be off, or jump) play no part.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

/// How often the server's clock is read again. Between two readings the
/// estimate drifts by the two clocks' difference in rate (parts per million).
const EVERY: Duration = Duration::from_secs(5);

/// The server's time in milliseconds, as last read and carried forward.
pub(super) struct ServerClock {
    /// The instant the offset counts from.
    base: Instant,
    /// The server's time at `base`, in milliseconds since the Unix epoch.
    at_base: AtomicU64,
}

impl ServerClock {
    /// Reads the server's clock once, and keeps reading it every few seconds
    /// for as long as the clock is in use. Needs a Tokio runtime.
    pub(super) async fn start(conn: &ConnectionManager) -> Result<Arc<Self>, redis::RedisError> {
        let base = Instant::now();
        let clock = Arc::new(Self {
            base,
            at_base: AtomicU64::new(0),
        });
        clock.read(conn).await?;
        tokio::spawn(follow(conn.clone(), Arc::downgrade(&clock)));
        Ok(clock)
    }

    /// The server's time now, in milliseconds since the Unix epoch (within
    /// half a round trip of what `TIME` would answer, plus the drift since the
    /// last reading).
    pub(super) fn now_ms(&self) -> u64 {
        self.at_base.load(Ordering::Relaxed) + self.base.elapsed().as_millis() as u64
    }

    /// Reads `TIME`, taking it for the server's time halfway through the round trip.
    async fn read(&self, conn: &ConnectionManager) -> Result<(), redis::RedisError> {
        let sent = Instant::now();
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn.clone()).await?;
        let halfway = sent + sent.elapsed() / 2;
        let server_ms = secs * 1000 + micros / 1000;
        let since_base = halfway.duration_since(self.base).as_millis() as u64;
        self.set(server_ms.saturating_sub(since_base));
        Ok(())
    }

    fn set(&self, at_base: u64) {
        self.at_base.store(at_base, Ordering::Relaxed);
    }
}

/// Reads the clock again every [`EVERY`] until nothing uses it. A failed
/// reading keeps the last one (the monotonic clock carries it on).
async fn follow(conn: ConnectionManager, clock: Weak<ServerClock>) {
    loop {
        tokio::time::sleep(EVERY).await;
        let Some(clock) = clock.upgrade() else {
            return;
        };
        if let Err(e) = clock.read(&conn).await {
            tracing::debug!(error = %e, "reading the Redis server's clock failed; keeping the last reading");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_moves_with_the_monotonic_clock() {
        let clock = ServerClock {
            base: Instant::now(),
            at_base: AtomicU64::new(0),
        };
        clock.set(1_000_000);
        let first = clock.now_ms();
        assert!((1_000_000..1_000_050).contains(&first), "{first}");
        std::thread::sleep(Duration::from_millis(30));
        let later = clock.now_ms();
        assert!(later >= first + 30, "{first} then {later}");
    }
}
