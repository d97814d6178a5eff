//! Commands over one port: write a command, read its answer through the [`Digester`], with a
//! timeout per command. Unsolicited codes that arrive meanwhile are queued, never lost, and
//! handed out by [`AtPort::next_urc`] / [`AtPort::take_urcs`]. Only the task that owns the
//! modem holds an `AtPort`, so there is one command in flight at a time.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::at::{Command, Digester, Event, Final, Urc};

/// Unsolicited codes kept while nobody takes them; older ones are dropped past this.
const MAX_QUEUED_URCS: usize = 1024;
/// Ctrl-Z ends the PDU after the `> ` prompt.
const CTRL_Z: u8 = 0x1a;
/// ESC aborts a pending `AT+CMGS`.
const ESC: u8 = 0x1b;

#[derive(Debug, thiserror::Error)]
pub enum AtError {
    #[error("no answer to {0} within {1} s")]
    Timeout(String, u64),
    #[error("the modem answered {0}: ERROR")]
    Error(String),
    #[error("the modem answered {0}: +CME ERROR: {1}")]
    Cme(String, u16),
    #[error("the modem answered {0}: +CMS ERROR: {1}")]
    Cms(String, u16),
    #[error("the port closed")]
    Closed,
    #[error("port I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl AtError {
    /// The port itself is gone or dead: reopen it.
    pub fn is_link_failure(&self) -> bool {
        matches!(self, AtError::Closed | AtError::Io(_))
    }
}

pub struct AtPort<P> {
    port: P,
    digester: Digester,
    urcs: VecDeque<Urc>,
    buf: Vec<u8>,
}

impl<P: AsyncRead + AsyncWrite + Unpin> AtPort<P> {
    pub fn new(port: P) -> AtPort<P> {
        AtPort {
            port,
            digester: Digester::new(),
            urcs: VecDeque::new(),
            buf: vec![0; 2048],
        }
    }

    /// Sends `cmd` and returns its information lines once the modem answers `OK`.
    pub async fn command(&mut self, cmd: &Command) -> Result<Vec<String>, AtError> {
        self.port
            .write_all(format!("{}\r", cmd.text).as_bytes())
            .await?;
        self.collect(cmd).await
    }

    /// `AT+CMGS=<length>`, the PDU after the prompt, Ctrl-Z; returns the TP-MR the modem gave.
    pub async fn submit(
        &mut self,
        length: usize,
        pdu_hex: &str,
        timeout: Duration,
    ) -> Result<u8, AtError> {
        let mut cmd = Command::new(format!("AT+CMGS={length}"), Some("+CMGS:")).timeout(timeout);
        cmd.wants_prompt = true;
        self.port
            .write_all(format!("{}\r", cmd.text).as_bytes())
            .await?;
        // The prompt comes at once from a working modem; the network's wait comes after Ctrl-Z.
        let prompt_wait = Duration::from_secs(10).min(timeout);
        let deadline = Instant::now() + prompt_wait;
        loop {
            match self.next_event(&cmd, deadline).await {
                Ok(Event::Prompt) => break,
                Ok(Event::Final(f)) => return Err(final_error(cmd.shown(), f)),
                Ok(_) => continue,
                Err(e) => {
                    // Leave the modem out of PDU-entry mode whatever state it is in.
                    let _ = self.port.write_all(&[ESC]).await;
                    return Err(match e {
                        AtError::Timeout(c, _) => AtError::Timeout(
                            format!("{c} (waiting for the > prompt)"),
                            prompt_wait.as_secs(),
                        ),
                        other => other,
                    });
                }
            }
        }
        let mut body = pdu_hex.as_bytes().to_vec();
        body.push(CTRL_Z);
        self.port.write_all(&body).await?;
        cmd.wants_prompt = false;
        let lines = self.collect(&cmd).await?;
        lines
            .iter()
            .find_map(|l| l.strip_prefix("+CMGS:"))
            .and_then(|mr| mr.trim().split(',').next()?.trim().parse::<u8>().ok())
            .ok_or_else(|| {
                AtError::Error(format!(
                    "{} (no message reference in the answer)",
                    cmd.shown()
                ))
            })
    }

    async fn collect(&mut self, cmd: &Command) -> Result<Vec<String>, AtError> {
        let deadline = Instant::now() + cmd.timeout;
        let mut lines = Vec::new();
        loop {
            match self.next_event(cmd, deadline).await? {
                Event::Info(line) => lines.push(line),
                Event::Final(Final::Ok) => return Ok(lines),
                Event::Final(f) => return Err(final_error(cmd.shown(), f)),
                Event::Prompt => {}
                Event::Urc(_) => unreachable!("queued by next_event"),
            }
        }
    }

    /// The next event for `cmd`; unsolicited codes are queued and skipped.
    async fn next_event(&mut self, cmd: &Command, deadline: Instant) -> Result<Event, AtError> {
        loop {
            while let Some(event) = self.digester.next(Some(cmd)) {
                match event {
                    Event::Urc(u) => self.queue(u),
                    other => return Ok(other),
                }
            }
            let read = tokio::time::timeout_at(deadline, self.port.read(&mut self.buf)).await;
            match read {
                Err(_) => {
                    return Err(AtError::Timeout(
                        cmd.shown().to_string(),
                        cmd.timeout.as_secs(),
                    ));
                }
                Ok(Ok(0)) => return Err(AtError::Closed),
                Ok(Ok(n)) => self.digester.push(&self.buf[..n]),
                Ok(Err(e)) => return Err(AtError::Io(e)),
            }
        }
    }

    fn queue(&mut self, urc: Urc) {
        if self.urcs.len() >= MAX_QUEUED_URCS {
            self.urcs.pop_front();
        }
        self.urcs.push_back(urc);
    }

    /// Unsolicited codes queued so far.
    pub fn take_urcs(&mut self) -> Vec<Urc> {
        self.urcs.drain(..).collect()
    }

    /// Waits for the next unsolicited code. Cancel safe: bytes read are kept in the digester.
    pub async fn next_urc(&mut self) -> Result<Urc, AtError> {
        loop {
            if let Some(u) = self.urcs.pop_front() {
                return Ok(u);
            }
            while let Some(event) = self.digester.next(None) {
                if let Event::Urc(u) = event {
                    return Ok(u);
                }
            }
            let n = self.port.read(&mut self.buf).await?;
            if n == 0 {
                return Err(AtError::Closed);
            }
            self.digester.push(&self.buf[..n]);
        }
    }

    /// Sends raw bytes (the ESC that wakes a modem from a half-typed command).
    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), AtError> {
        self.port.write_all(bytes).await?;
        Ok(())
    }

    /// Discards whatever is buffered (after a timeout, stale answers must not be taken for new ones).
    pub fn discard_input(&mut self) {
        self.digester.reset();
    }
}

fn final_error(cmd: &str, f: Final) -> AtError {
    match f {
        Final::Ok => AtError::Error(format!("{cmd} (unexpected OK)")),
        Final::Error => AtError::Error(cmd.to_string()),
        Final::Cme(n) => AtError::Cme(cmd.to_string(), n),
        Final::Cms(n) => AtError::Cms(cmd.to_string(), n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    #[tokio::test]
    async fn command_with_urc_mid_answer_and_submit() {
        let (ours, mut modem) = duplex(4096);
        let mut port = AtPort::new(ours);
        let script = tokio::spawn(async move {
            let mut buf = [0u8; 256];
            let n = modem.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"AT+CSQ\r");
            modem
                .write_all(b"AT+CSQ\r\r\n+CSQ: 17,99\r\n\r\n+CMTI: \"SM\",2\r\n\r\nOK\r\n")
                .await
                .unwrap();
            let n = modem.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"AT+CMGS=19\r");
            modem.write_all(b"\r\n> ").await.unwrap();
            let mut pdu = Vec::new();
            while !pdu.ends_with(&[CTRL_Z]) {
                let n = modem.read(&mut buf).await.unwrap();
                pdu.extend_from_slice(&buf[..n]);
            }
            assert_eq!(pdu, b"00AB\x1a");
            modem
                .write_all(b"\r\n+CMGS: 42\r\n\r\nOK\r\n")
                .await
                .unwrap();
            modem
        });
        let lines = port
            .command(&Command::new("AT+CSQ", Some("+CSQ:")))
            .await
            .unwrap();
        assert_eq!(lines, ["+CSQ: 17,99"]);
        let mr = port
            .submit(19, "00AB", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(mr, 42);
        assert_eq!(
            port.next_urc().await.unwrap(),
            Urc::NewMessage {
                storage: "SM".into(),
                index: 2
            }
        );
        drop(script.await.unwrap());
        assert!(matches!(port.next_urc().await, Err(AtError::Closed)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_modem_times_out() {
        let (ours, _modem) = duplex(64);
        let mut port = AtPort::new(ours);
        let err = port
            .command(&Command::new("AT", None).timeout(Duration::from_secs(3)))
            .await
            .unwrap_err();
        assert!(matches!(err, AtError::Timeout(_, 3)), "{err}");
    }

    #[tokio::test]
    async fn errors_are_typed() {
        let (ours, mut modem) = duplex(1024);
        let mut port = AtPort::new(ours);
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let _ = modem.read(&mut buf).await;
            modem.write_all(b"\r\n+CMS ERROR: 321\r\n").await.unwrap();
            let _ = modem.read(&mut buf).await;
            modem.write_all(b"\r\n+CMS ERROR: 38\r\n").await.unwrap();
            let _ = modem.read(&mut buf).await;
        });
        let err = port
            .command(&Command::new("AT+CMGR=9", Some("+CMGR:")))
            .await
            .unwrap_err();
        assert!(matches!(err, AtError::Cms(_, 321)));
        let err = port
            .submit(10, "00", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, AtError::Cms(_, 38)), "{err}");
    }
}
