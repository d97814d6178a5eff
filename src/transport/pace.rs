//! A rate limit held on requests as they reach the provider, for transports whose provider
//! counts requests per window (WhatsApp's 80 messages per second per number).
//!
//! The dispatcher's own limit counts claims; a claimed message may wait a little before its
//! request leaves (a PDF check, a free HTTP connection), so claims within a window can arrive
//! in the next one and a window at the provider can see more than the limit. A [`Pacer`]
//! hands out one [`Pass`] per request, taken just before the request is written and dropped
//! when its answer came back. A request counts against the window from the moment it starts
//! until `per` after its answer, so whatever the network's delay, the provider never receives
//! more than `count` requests in any window of `per`: a request reaches the provider between
//! its start and its answer, and when the last of `count + 1` requests arriving within one
//! window started, the other `count` were all still counted.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::RateLimit;

#[derive(Debug)]
pub struct Pacer {
    limit: RateLimit,
    state: Mutex<Window>,
    /// Signalled when a request is answered (its slot starts to run out).
    answered: Notify,
}

#[derive(Debug, Default)]
struct Window {
    /// Requests started and not yet answered.
    open: usize,
    /// When each recently answered request was answered, oldest first.
    answered: VecDeque<Instant>,
}

impl Window {
    fn forget_old(&mut self, now: Instant, per: std::time::Duration) {
        while self
            .answered
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= per)
        {
            self.answered.pop_front();
        }
    }
}

/// One request's place in the window: hold it while the request is in flight and drop it when
/// the answer (or the error) came back.
#[derive(Debug)]
pub struct Pass<'a> {
    pacer: &'a Pacer,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let mut w = self.pacer.lock();
        w.open = w.open.saturating_sub(1);
        w.answered.push_back(Instant::now());
        drop(w);
        self.pacer.answered.notify_waiters();
    }
}

impl Pacer {
    pub fn new(limit: RateLimit) -> Pacer {
        Pacer {
            limit,
            state: Mutex::new(Window::default()),
            answered: Notify::new(),
        }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until one more request may start, and counts it. Cancel safe: a wait dropped
    /// before it returns takes no place.
    pub async fn pass(&self) -> Pass<'_> {
        let count = self.limit.count.max(1) as usize;
        loop {
            let answered = self.answered.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            let until = {
                let now = Instant::now();
                let mut w = self.lock();
                w.forget_old(now, self.limit.per);
                if w.open + w.answered.len() < count {
                    w.open += 1;
                    return Pass { pacer: self };
                }
                // Full: the oldest answered request leaves the window first; with every place
                // taken by requests in flight, an answer must come first.
                w.answered.front().map(|t| *t + self.limit.per)
            };
            match until {
                Some(t) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(t) => {}
                        _ = &mut answered => {}
                    }
                }
                None => answered.await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// Requests whose answers take from 0 to 700 ms (the provider sees each at a varying point
    /// in between) never put more than the limit in any window at the provider, and the pacer
    /// does not hold them back beyond that.
    #[tokio::test(start_paused = true)]
    async fn no_window_at_the_provider_sees_more_than_the_limit() {
        let pacer = Arc::new(Pacer::new(RateLimit::parse("10/second").unwrap()));
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        // 8 senders at once, like the WhatsApp route's slots, 100 requests.
        let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
        for _ in 0..8 {
            let (pacer, arrivals, next) = (pacer.clone(), arrivals.clone(), next.clone());
            tasks.spawn(async move {
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if k >= 100 {
                        return;
                    }
                    let pass = pacer.pass().await;
                    // The way there and back: 0..700 ms, the provider's arrival in between.
                    let there = Duration::from_millis(k * 37 % 350);
                    let back = Duration::from_millis(k * 53 % 350);
                    tokio::time::sleep(there).await;
                    arrivals.lock().unwrap().push(Instant::now());
                    tokio::time::sleep(back).await;
                    drop(pass);
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        let mut times = arrivals.lock().unwrap().clone();
        times.sort();
        assert_eq!(times.len(), 100);
        let mut lo = 0;
        for hi in 0..times.len() {
            while times[hi] - times[lo] >= Duration::from_secs(1) {
                lo += 1;
            }
            assert!(
                hi - lo < 10,
                "{} requests within one second, ending at {:?}",
                hi - lo + 1,
                times[hi] - start
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_window_frees_a_place_per_after_an_answer() {
        let pacer = Pacer::new(RateLimit::parse("2/second").unwrap());
        let t0 = Instant::now();
        let a = pacer.pass().await;
        let b = pacer.pass().await;
        drop(a);
        tokio::time::advance(Duration::from_millis(300)).await;
        drop(b);
        // Both places taken until a's answer is a second old.
        let c = pacer.pass().await;
        let at = Instant::now() - t0;
        // Paused time: the clock jumps to the timer, at the timer wheel's millisecond.
        assert!((1000..=1001).contains(&at.as_millis()), "{at:?}");
        // b was answered at 300 ms: the next place is free at 1.3 s.
        let d = pacer.pass().await;
        let at = Instant::now() - t0;
        assert!((1300..=1301).contains(&at.as_millis()), "{at:?}");
        drop((c, d));
        // A wait given up takes no place.
        let e = tokio::time::timeout(Duration::from_millis(10), pacer.pass()).await;
        assert!(e.is_err());
        let w = pacer.lock();
        assert_eq!((w.open, w.answered.len()), (0, 2));
    }
}
