//! Coalesced idle wake-ups. The daemon's background loops (dispatcher, status reporter,
//! scheduler, ticket forwarder, search indexer, inbox) each sleep a long time when there is
//! nothing to do. Left alone their deadlines fall at unrelated instants, and each costs the
//! process a wake-up of its own (tokio's timer wheel adds one more per timer as it moves it to
//! a finer level). [`sleep`] rounds a long deadline to the nearest multiple of [`GRID`] on one
//! clock, so the loops wake together: an idle gateway wakes a few times a minute, not every
//! few seconds (`benches/idle.rs`).
//!
//! Only waits that are upper bounds go through here ("look again within 30 s"); a wait for a
//! known due time (a retry, a window opening) uses a plain sleep.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

/// Long deadlines land on multiples of this, counted from the first call.
pub const GRID: Duration = Duration::from_secs(10);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The instant to wake for a wait of about `wait`: `now + wait` rounded to the nearest grid
/// line, never earlier than half a grid from now. Waits shorter than one grid are not moved.
pub fn deadline(wait: Duration) -> Instant {
    let now = Instant::now();
    if wait < GRID {
        return now + wait;
    }
    let grid = GRID.as_millis();
    let since = (now + wait).duration_since(epoch()).as_millis();
    let rounded = (since + grid / 2) / grid * grid;
    let at = epoch() + Duration::from_millis(rounded as u64);
    at.max(now + GRID / 2)
}

/// Sleeps about `wait` (see [`deadline`]).
pub async fn sleep(wait: Duration) {
    tokio::time::sleep_until(deadline(wait)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn long_waits_meet_on_the_grid_and_short_ones_stay() {
        let _ = epoch();
        tokio::time::advance(Duration::from_millis(1_234)).await;
        let a = deadline(Duration::from_secs(30));
        tokio::time::advance(Duration::from_millis(3_100)).await;
        let b = deadline(Duration::from_secs(30));
        let c = deadline(Duration::from_secs(60));
        assert_eq!(a, b, "two 30 s waits begun 3 s apart wake together");
        assert_eq!(a.duration_since(epoch()), Duration::from_secs(30));
        assert_eq!(c.duration_since(epoch()), Duration::from_secs(60));
        let now = Instant::now();
        assert_eq!(
            deadline(Duration::from_secs(2)),
            now + Duration::from_secs(2)
        );
        // Rounding never turns a long wait into a busy loop.
        tokio::time::advance(Duration::from_millis(5_500)).await;
        let d = deadline(Duration::from_secs(10));
        assert!(d >= Instant::now() + GRID / 2);
    }
}
