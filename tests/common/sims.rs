//! The modem simulator in-process on a real pseudo-terminal, and what it was handed to send.

use pasarela::modem::sim::{self, SimHandle, SimOptions};

use super::wait_for;

/// A simulator with default options, its link in `dir`.
pub async fn simulator(dir: &std::path::Path) -> SimHandle {
    sim::start(SimOptions::new(dir.join("modem")))
        .await
        .unwrap()
}

/// The texts the gateway sent to `to`, in order.
pub fn sent_to(sim: &SimHandle, to: &str) -> Vec<String> {
    sim.sent()
        .into_iter()
        .filter(|m| m.to == to)
        .map(|m| m.text)
        .collect()
}

/// Waits until `n` texts went to `to`; all of them.
pub async fn wait_sent(sim: &SimHandle, to: &str, n: usize) -> Vec<String> {
    wait_for(&format!("{n} message(s) to {to}"), 30, async || {
        sent_to(sim, to).len() >= n
    })
    .await;
    sent_to(sim, to)
}
