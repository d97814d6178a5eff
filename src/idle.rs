//! Coalesced idle wake-ups. The daemon's background loops (dispatcher, status reporter,
//! scheduler, ticket forwarder, search indexer, inbox) each sleep a long time when there is
//! nothing to do. Left alone their deadlines fall at unrelated instants, and each costs the
//! process a wake-up of its own. [`sleep`] rounds a long deadline to the nearest multiple of
//! [`GRID`] on one clock, so the loops wake together: an idle gateway wakes a few times a
//! minute, not every few seconds (`benches/idle.rs`).
//!
//! [`sleep_until`] waits on a kernel timer (a `timerfd`), not on tokio's timer wheel: the
//! wheel parks its thread only until the start of the wheel slot that holds the next deadline
//! (slots are 4.096 s wide for a deadline 10 s away, 64 ms for one under 4 s), so each long
//! sleep woke the process two extra times on its way down the levels. A timerfd wakes it once,
//! at the deadline.
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

/// When a loop whose longest sleep is `longest` wakes for a sleep of `wait`: that longest
/// one is an upper bound ("look again within 30 s") and lands on the grid; a shorter one is
/// for a known due time and is kept exact.
pub fn wake_at(wait: Duration, longest: Duration) -> Instant {
    if wait >= longest {
        deadline(wait)
    } else {
        Instant::now() + wait
    }
}

/// Sleeps about `wait` (see [`deadline`]).
pub async fn sleep(wait: Duration) {
    sleep_until(deadline(wait)).await
}

/// A periodic tick on the idle clock (a modem's health check, its SIM sweep): each tick is a
/// [`sleep_until`] to about one period after the last, on the grid when the period is long.
/// Unlike tokio's `Interval` the first tick is one period away, not immediate.
pub struct Ticker {
    period: Duration,
    next: Instant,
}

impl Ticker {
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            next: deadline(period),
        }
    }

    /// Waits for the next tick. Cancel-safe: a tick not waited out stays due.
    pub async fn tick(&mut self) {
        sleep_until(self.next).await;
        self.next = deadline(self.period);
    }

    /// The next tick comes `wait` from now instead.
    pub fn reset_after(&mut self, wait: Duration) {
        self.next = Instant::now() + wait;
    }

    pub fn period(&self) -> Duration {
        self.period
    }
}

/// Below this a wait stays on tokio's wheel: its finest level has 1 ms slots over 64 ms, so a
/// wait this short already wakes the thread once.
const WHEEL_EXACT: Duration = Duration::from_millis(64);

/// Whether [`sleep_until`] uses kernel timers: the daemon turns them on at start. Off, it is
/// tokio's sleep, which follows tokio's clock, so tests that pause and advance that clock
/// can drive the same loops (a kernel timer runs on the real clock only).
static KERNEL_TIMERS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns kernel timers on for this process (see [`sleep_until`]).
pub fn use_kernel_timers() {
    KERNEL_TIMERS.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Sleeps until `at`, waking the process once (see the module's text) once
/// [`use_kernel_timers`] was called. Cancel-safe: dropping the future closes its timer.
/// Falls back to tokio's sleep where a timerfd cannot be had.
pub async fn sleep_until(at: Instant) {
    #[cfg(target_os = "linux")]
    if KERNEL_TIMERS.load(std::sync::atomic::Ordering::Relaxed)
        && at.saturating_duration_since(Instant::now()) >= WHEEL_EXACT
        && let Ok(timer) = timerfd::OneShot::new(at)
        && timer.wait().await.is_ok()
    {
        return;
    }
    tokio::time::sleep_until(at).await
}

#[cfg(target_os = "linux")]
mod timerfd {
    use std::io;
    use std::os::fd::{AsFd, AsRawFd, RawFd};

    use nix::sys::time::TimeSpec;
    use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
    use nix::time::{ClockId as Clock, clock_gettime};
    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;
    use tokio::time::Instant;

    /// A one-shot `CLOCK_MONOTONIC` timer, armed at an absolute time, that the runtime's
    /// epoll watches like a socket.
    pub struct OneShot(AsyncFd<Timer>);

    /// `AsyncFd` asks for `AsRawFd`; nix's `TimerFd` offers `AsFd`.
    struct Timer(TimerFd);

    impl AsRawFd for Timer {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_fd().as_raw_fd()
        }
    }

    impl OneShot {
        pub fn new(at: Instant) -> io::Result<Self> {
            let timer = TimerFd::new(
                ClockId::CLOCK_MONOTONIC,
                TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
            )?;
            // What is left, read before the kernel's clock: the timer may then fire late by
            // the gap between the two reads, never early. tokio's Instant is std's, which is
            // CLOCK_MONOTONIC on Linux: the deadline is "now" on that clock plus what is left.
            // A deadline already past gives a time just passed, which fires at once (never
            // zero, which would disarm the timer).
            let left = at.saturating_duration_since(Instant::now());
            let target = clock_gettime(Clock::CLOCK_MONOTONIC)? + TimeSpec::from(left);
            timer.set(
                Expiration::OneShot(target),
                TimerSetTimeFlags::TFD_TIMER_ABSTIME,
            )?;
            // SAFETY: the AsyncFd owns the timer, whose descriptor stays open (and the same
            // timer) until the AsyncFd drops it.
            Ok(Self(unsafe {
                AsyncFd::register_with_interest(Timer(timer), Interest::READABLE)?
            }))
        }

        /// Resolves once the timer has fired.
        pub async fn wait(&self) -> io::Result<()> {
            loop {
                let mut guard = self.0.readable().await?;
                // The expiration count (8 bytes) is read to clear the readiness.
                match guard.try_io(|fd| {
                    nix::unistd::read(fd.get_ref().0.as_fd(), &mut [0u8; 8])
                        .map(drop)
                        .map_err(io::Error::from)
                }) {
                    Ok(result) => return result,
                    Err(_would_block) => continue,
                }
            }
        }
    }
}

/// What [`release_memory`] handed back, for the log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// Read-only file-backed mappings whose pages were dropped from this process.
    pub mappings: usize,
    /// Their resident size before, in KiB (from `/proc/self/smaps`).
    pub file_kib: u64,
}

/// Hands memory the daemon does not need while it is quiet back to the system: the heap's
/// spare pages and the code pages the last round left mapped ([`release_code`]). Called once
/// start-up is over and again each time a burst of traffic has ended (the status reporter sees
/// both), never on the hot path. glibc keeps freed memory in its arenas until told otherwise:
/// `malloc_trim` returns it.
pub fn release_memory() -> Released {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns unused pages of the allocator's own heaps.
    unsafe {
        libc::malloc_trim(0);
    }
    release_code()
}

/// Drops the clean code and read-only data pages of the binary and its shared libraries
/// from this process (`MADV_DONTNEED`). The kernel maps code in runs (64 KiB around each
/// page touched, or a whole large folio of the page cache), so start-up, a burst of traffic,
/// or even one idle round (a status look, a query, a modem poll) leaves MB of code mapped that
/// the gateway will not run again before its next round. The pages stay in the page cache,
/// where the kernel can reclaim them when memory is short, and the next instruction that needs
/// one maps it back from there (a minor fault, no disk read while it is cached). The status
/// reporter calls this after every quiet round, so between rounds an idle gateway holds little
/// more than the code it is sleeping in.
///
/// Only private, read-only file mappings without a single private (copied) page are dropped:
/// their pages are the file's own page-cache pages, so dropping loses nothing. Writable
/// mappings and read-only ones holding copied pages (relocated data) are never touched. A
/// library rewritten in place would change what this process sees whether its pages were
/// mapped or not (they are the same page-cache pages), so dropping adds no risk there either;
/// package managers replace files by renaming anyway.
pub fn release_code() -> Released {
    #[cfg(target_os = "linux")]
    {
        let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
            return Released::default();
        };
        let mut released = Released::default();
        for m in clean_read_only(&smaps) {
            // SAFETY: the range is a whole mapping of this process that is private, not
            // writable and holds no private page (checked from smaps just above; it cannot
            // gain one without a write, which its protection forbids), so dropping its pages
            // loses nothing: each is read back from the file on its next access.
            let rc = unsafe {
                libc::madvise(
                    m.start as *mut libc::c_void,
                    m.end - m.start,
                    libc::MADV_DONTNEED,
                )
            };
            if rc == 0 {
                released.mappings += 1;
                released.file_kib += m.rss_kib;
            }
        }
        released
    }
    #[cfg(not(target_os = "linux"))]
    Released::default()
}

/// One mapping that [`release_memory`] may drop.
#[derive(Debug, PartialEq, Eq)]
struct CleanMapping {
    start: usize,
    end: usize,
    rss_kib: u64,
}

/// The file mappings in an smaps text that are private, not writable, hold resident pages and
/// no anonymous (copied-on-write) page, and are not locked.
fn clean_read_only(smaps: &str) -> Vec<CleanMapping> {
    struct Current {
        range: Option<(usize, usize)>,
        eligible: bool,
        rss: u64,
        anon: Option<u64>,
        locked: u64,
    }
    fn finish(cur: &Current, out: &mut Vec<CleanMapping>) {
        if let (Some((start, end)), true, Some(0)) = (cur.range, cur.eligible, cur.anon)
            && cur.rss > 0
            && cur.locked == 0
        {
            out.push(CleanMapping {
                start,
                end,
                rss_kib: cur.rss,
            });
        }
    }
    let mut out = Vec::new();
    let mut cur = Current {
        range: None,
        eligible: false,
        rss: 0,
        anon: None,
        locked: 0,
    };
    for line in smaps.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            finish(&cur, &mut out);
            let perms = fields.next().unwrap_or("");
            let inode = fields.nth(2).unwrap_or("0");
            let path = fields.next().unwrap_or("");
            let p = perms.as_bytes();
            let eligible = p.len() == 4
                && p[0] == b'r'
                && p[1] == b'-'
                && p[3] == b'p'
                && inode != "0"
                && path.starts_with('/')
                && fields.next().is_none();
            cur = Current {
                range: Some((start, end)),
                eligible,
                rss: 0,
                anon: None,
                locked: 0,
            };
            continue;
        }
        let value = fields.next().and_then(|v| v.parse::<u64>().ok());
        match (first, value) {
            ("Rss:", Some(v)) => cur.rss = v,
            ("Anonymous:", Some(v)) => cur.anon = Some(v),
            ("Locked:", Some(v)) => cur.locked = v,
            _ => {}
        }
    }
    finish(&cur, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clean_read_only_file_mappings_are_dropped() {
        let smaps = "\
55d0c0000000-55d0c0100000 r--p 00000000 fd:01 1234 /usr/bin/pasarela
Rss:                 512 kB
Anonymous:             0 kB
Locked:                0 kB
55d0c0100000-55d0c0700000 r-xp 00100000 fd:01 1234 /usr/bin/pasarela
Rss:                5716 kB
Anonymous:             0 kB
Locked:                0 kB
55d0c0700000-55d0c0800000 r--p 00700000 fd:01 1234 /usr/bin/pasarela
Rss:                1444 kB
Anonymous:          1444 kB
Locked:                0 kB
55d0c0800000-55d0c0810000 rw-p 00800000 fd:01 1234 /usr/bin/pasarela
Rss:                  20 kB
Anonymous:            20 kB
55d0c1000000-55d0c1400000 rw-p 00000000 00:00 0 [heap]
Rss:                4092 kB
Anonymous:          4092 kB
7f0000000000-7f0000100000 r-xp 00000000 fd:01 99 /usr/lib/libc.so.6
Rss:                 640 kB
Anonymous:             0 kB
7f0000200000-7f0000300000 r--s 00000000 fd:01 77 /var/lib/pasarela/pasarela.db-shm
Rss:                  32 kB
Anonymous:             0 kB
7f0000300000-7f0000301000 r--p 00000000 fd:01 1234 /usr/bin/pasarela
Rss:                   0 kB
Anonymous:             0 kB
7f0000400000-7f0000401000 r-xp 00000000 fd:01 1234 /usr/bin/pasarela
Rss:                   4 kB
Anonymous:             0 kB
Locked:                4 kB
7f0000410000-7f0000411000 r-xp 00000000 fd:01 1235 /usr/bin/pasarela (deleted)
Rss:                   4 kB
Anonymous:             0 kB
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]
Rss:                   8 kB
Anonymous:             0 kB
7f0000500000-7f0000600000 r-xp 00000000 fd:01 1234 /usr/bin/pasarela
Rss:                  64 kB
";
        // Kept: the binary's and the libraries' clean code and read-only data. Left alone:
        // relocated (copied) data, writable, shared, locked, empty and anonymous mappings, a
        // replaced binary, and the last one, whose smaps lines are cut short (no Anonymous
        // line), as is anything whose privacy cannot be shown.
        assert_eq!(
            clean_read_only(smaps),
            vec![
                CleanMapping {
                    start: 0x55d0c0000000,
                    end: 0x55d0c0100000,
                    rss_kib: 512
                },
                CleanMapping {
                    start: 0x55d0c0100000,
                    end: 0x55d0c0700000,
                    rss_kib: 5716
                },
                CleanMapping {
                    start: 0x7f0000000000,
                    end: 0x7f0000100000,
                    rss_kib: 640
                },
            ]
        );
    }

    #[test]
    fn releasing_keeps_the_process_working() {
        // Drops this test binary's clean code pages and keeps running on them.
        let released = release_memory();
        assert!(released.mappings > 0, "{released:?}");
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let total: u64 = clean_read_only(&smaps).iter().map(|m| m.rss_kib).sum();
        assert!(
            total < released.file_kib,
            "{total} KiB still mapped of {} KiB",
            released.file_kib
        );
    }

    /// On the real clock (the timer is the kernel's): it fires at its deadline, not before,
    /// and one already past fires at once.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_kernel_timer_fires_at_its_deadline() {
        let start = Instant::now();
        let at = start + WHEEL_EXACT * 3;
        let timer = timerfd::OneShot::new(at).unwrap();
        timer.wait().await.unwrap();
        assert!(
            Instant::now() >= at,
            "fired {:?} early",
            at - Instant::now()
        );
        let past = timerfd::OneShot::new(start).unwrap();
        past.wait().await.unwrap();
        // Dropped unfired: the descriptor is closed without a wait.
        drop(timerfd::OneShot::new(Instant::now() + Duration::from_secs(3600)).unwrap());
    }

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
