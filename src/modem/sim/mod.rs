//! `pasarela modem-sim`: an AT modem on a pseudo-terminal, faithful enough for the modem driver
//! and for Gammu's command-line tool, with an HTTP control API to put messages on its SIM, read
//! what it sent and inject faults.
//!
//! Map:
//! - [`engine`]: the AT interpreter, SIM storage, network queue and faults; pure, no I/O.
//! - [`pdu_out`]: SMS-DELIVER and SMS-STATUS-REPORT encoders.
//! - [`pty`]: the pseudo-terminal and its symlink.
//! - [`control`]: the HTTP API; [`cli`]: the subcommand.
//! - [`types`]: configuration, faults and the JSON shapes both APIs share.
//!
//! Contracts:
//! - [`start`] returns once the link exists and the control API listens; [`SimHandle::shutdown`]
//!   stops both and removes the link.
//! - One task owns the pseudo-terminal; the engine sits behind a mutex that is never held across
//!   an `.await`. An idle simulator sleeps: it wakes only for host bytes, API calls and deadlines
//!   the engine reports (status reports, the end of a hang, garbage noise).
//! - SIM contents and the sent list survive an unplug; session settings (echo, `AT+CNMI`, PIN)
//!   reset as after a power cycle.

pub mod cli;
pub mod control;
pub mod engine;
pub mod pdu_out;
pub mod pty;
pub mod types;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use engine::{Engine, Identity, Output};
pub use pdu_out::PduError;
pub use types::{
    ConfigPatch, Fault, InvalidInput, Registration, SentMessage, SimConfig, SimContents,
    StoredMessage, UssdNode, UssdResult,
};

use pty::Pty;

/// How long a write to the pseudo-terminal may wait for a host that does not read before the
/// bytes are dropped (a real modem's UART would overrun too).
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause before retrying when the pseudo-terminal cannot be created or read.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// What to start.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Symlink to create (replacing a stale one) pointing at the pseudo-terminal.
    pub link: PathBuf,
    /// Where the HTTP control API listens (port 0 picks one); `None` runs without it.
    pub control: Option<SocketAddr>,
    pub config: SimConfig,
    pub identity: Identity,
}

impl SimOptions {
    /// Default modem and SIM at `link`, without the HTTP API.
    pub fn new(link: impl Into<PathBuf>) -> Self {
        SimOptions {
            link: link.into(),
            control: None,
            config: SimConfig::default(),
            identity: Identity::default(),
        }
    }
}

/// Why an inbound message, fault or configuration change was refused.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error(transparent)]
    Pdu(#[from] PduError),
}

impl SimError {
    /// The request field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            SimError::Invalid(i) => i.field,
            SimError::Pdu(PduError::InvalidSender(_)) => "from",
            SimError::Pdu(_) => "text",
        }
    }
}

enum LinkCommand {
    Unplug(Duration),
    Replug,
}

struct Shared {
    engine: Mutex<Engine>,
    /// Something for the pseudo-terminal task to look at (queued unsolicited codes, new faults).
    wake: Notify,
    link: PathBuf,
    slave: Mutex<Option<PathBuf>>,
    commands: mpsc::Sender<LinkCommand>,
}

/// A cheap, cloneable view of a running simulator: what the control API and [`SimHandle`] use.
#[derive(Clone)]
pub struct Sim {
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Sim {
    fn engine(&self) -> MutexGuard<'_, Engine> {
        lock(&self.shared.engine)
    }

    /// Puts a text on the network for the SIM; returns its part count.
    pub fn inbound(&self, from: &str, text: &str) -> Result<usize, SimError> {
        let parts = self.engine().inbound(from, text)?;
        self.shared.wake.notify_one();
        Ok(parts)
    }

    /// Puts raw PDU bytes (SMS-centre field first) on the SIM, decodable or not.
    pub fn inbound_raw(&self, bytes: Vec<u8>) {
        self.engine().inbound_raw(bytes);
        self.shared.wake.notify_one();
    }

    /// Every complete message submitted so far, oldest first.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.engine().sent().to_vec()
    }

    pub fn clear_sent(&self) {
        self.engine().clear_sent();
    }

    pub fn sim_messages(&self) -> SimContents {
        self.engine().sim_contents()
    }

    pub fn config(&self) -> SimConfig {
        self.engine().config().clone()
    }

    pub fn set_config(&self, patch: ConfigPatch) -> Result<(), SimError> {
        self.engine().set_config(patch)?;
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Starts (or with [`Fault::Clear`] ends) a fault.
    pub fn fault(&self, fault: &Fault) -> Result<(), SimError> {
        fault.validate()?;
        match *fault {
            Fault::Unplug { secs } => {
                let _ = self.shared.commands.try_send(LinkCommand::Unplug(
                    Duration::try_from_secs_f64(secs).unwrap_or_default(),
                ));
            }
            Fault::Clear => {
                self.engine().apply_fault(fault, Instant::now())?;
                let _ = self.shared.commands.try_send(LinkCommand::Replug);
            }
            _ => self.engine().apply_fault(fault, Instant::now())?,
        }
        self.shared.wake.notify_one();
        Ok(())
    }

    /// The symlink the host opens.
    pub fn link(&self) -> &Path {
        &self.shared.link
    }

    /// The pseudo-terminal the link points at; `None` while unplugged.
    pub fn device(&self) -> Option<PathBuf> {
        lock(&self.shared.slave).clone()
    }
}

/// A running simulator. Dropping it without [`SimHandle::shutdown`] stops the tasks too, but
/// leaves the link behind.
pub struct SimHandle {
    sim: Sim,
    control: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::ops::Deref for SimHandle {
    type Target = Sim;

    fn deref(&self) -> &Sim {
        &self.sim
    }
}

impl SimHandle {
    /// Where the control API listens (the bound port when started with port 0).
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control
    }

    /// A clone of the simulator view, for other tasks.
    pub fn sim(&self) -> Sim {
        self.sim.clone()
    }

    /// Stops the pseudo-terminal and the control API and removes the link.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        pty::remove_link(&self.sim.shared.link);
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Creates the pseudo-terminal and link, binds the control API, and starts serving.
pub async fn start(opts: SimOptions) -> anyhow::Result<SimHandle> {
    let pty = Pty::open(&opts.link)
        .with_context(|| format!("creating a pseudo-terminal at {}", opts.link.display()))?;
    let listener = match opts.control {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the control API to {addr}"))?,
        ),
        None => None,
    };
    let control = match &listener {
        Some(l) => Some(l.local_addr().context("reading the control API address")?),
        None => None,
    };
    let seed = getrandom::u64().unwrap_or(0x5eed_5eed);
    let (commands, command_rx) = mpsc::channel(8);
    let shared = Arc::new(Shared {
        engine: Mutex::new(Engine::new(opts.config, opts.identity, seed)),
        wake: Notify::new(),
        link: opts.link,
        slave: Mutex::new(Some(pty.slave_path().to_path_buf())),
        commands,
    });
    let sim = Sim { shared };
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = vec![tokio::spawn(run_link(
        sim.clone(),
        pty,
        command_rx,
        stop_rx.clone(),
    ))];
    if let Some(listener) = listener {
        tasks.push(tokio::spawn(control::serve(listener, sim.clone(), stop_rx)));
    }
    Ok(SimHandle {
        sim,
        control,
        stop,
        tasks,
    })
}

enum Ended {
    Stop,
    Unplug(Duration),
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Owns the pseudo-terminal: serves it, and closes and recreates it for an unplug.
async fn run_link(
    sim: Sim,
    mut pty: Pty,
    mut commands: mpsc::Receiver<LinkCommand>,
    mut stop: watch::Receiver<bool>,
) {
    let shared = &sim.shared;
    loop {
        match serve_pty(&sim, &pty, &mut commands, &mut stop).await {
            Ended::Stop => break,
            Ended::Unplug(away) => {
                drop(pty);
                pty::remove_link(&shared.link);
                *lock(&shared.slave) = None;
                let back = tokio::time::sleep(away);
                tokio::pin!(back);
                loop {
                    tokio::select! {
                        _ = stopped(&mut stop) => return,
                        _ = &mut back => break,
                        cmd = commands.recv() => match cmd {
                            Some(LinkCommand::Replug) | None => break,
                            Some(LinkCommand::Unplug(_)) => {}
                        },
                    }
                }
                pty = loop {
                    match Pty::open(&shared.link) {
                        Ok(p) => break p,
                        Err(e) => {
                            log::warn!("modem-sim: cannot recreate the pseudo-terminal: {e}");
                            tokio::select! {
                                _ = stopped(&mut stop) => return,
                                _ = tokio::time::sleep(RETRY_PAUSE) => {}
                            }
                        }
                    }
                };
                *lock(&shared.slave) = Some(pty.slave_path().to_path_buf());
                sim.engine().power_up();
            }
        }
    }
}

async fn serve_pty(
    sim: &Sim,
    pty: &Pty,
    commands: &mut mpsc::Receiver<LinkCommand>,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let mut buf = [0u8; 4096];
    loop {
        let deadline = sim.engine().next_deadline();
        tokio::select! {
            _ = stopped(stop) => return Ended::Stop,
            cmd = commands.recv() => match cmd {
                Some(LinkCommand::Unplug(away)) => return Ended::Unplug(away),
                Some(LinkCommand::Replug) => {}
                None => return Ended::Stop,
            },
            read = pty.read(&mut buf) => match read {
                Ok(n) if n > 0 => {
                    let outputs = sim.engine().feed(&buf[..n], Instant::now());
                    for output in outputs {
                        match output {
                            Output::Write(bytes) => write(pty, &bytes).await,
                            Output::Pause(d) => tokio::select! {
                                _ = stopped(stop) => return Ended::Stop,
                                _ = tokio::time::sleep(d) => {}
                            },
                        }
                    }
                }
                Ok(_) | Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
            },
            _ = sim.shared.wake.notified() => {}
            _ = sleep_until(deadline), if deadline.is_some() => {}
        }
        let unsolicited = sim.engine().poll(Instant::now());
        if !unsolicited.is_empty() {
            write(pty, &unsolicited).await;
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

async fn write(pty: &Pty, bytes: &[u8]) {
    match tokio::time::timeout(WRITE_TIMEOUT, pty.write_all(bytes)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log::debug!("modem-sim: write failed: {e}"),
        Err(_) => log::debug!("modem-sim: host not reading; {} bytes dropped", bytes.len()),
    }
}
