//! Logging: to journald through its native protocol when the journal socket is there, else to
//! stderr with timestamps. Structured fields given with `log`'s key-values (`msg_id = 42`)
//! become journal fields operators can filter on: `journalctl -u pasarela PASARELA_MSG_ID=42`,
//! `PASARELA_CHANNEL=sms`.
//!
//! The journal client is written here rather than taken from a crate so that the socket path
//! can be pointed at a test socket (`PASARELA_JOURNAL_SOCKET`), which is how the fields are
//! tested against a datagram socket that speaks the journal's protocol.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The socket journald listens on for its native protocol.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
/// Overrides [`JOURNAL_SOCKET`]; for tests.
pub const JOURNAL_SOCKET_ENV: &str = "PASARELA_JOURNAL_SOCKET";
/// A datagram larger than this is cut (journald accepts more, but log lines this long are bugs).
const MAX_MESSAGE: usize = 32 * 1024;

enum Sink {
    Journal(UnixDatagram),
    Stderr,
}

struct Logger {
    sink: Sink,
    level: LevelFilter,
}

/// Where logs went, for the start-up line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Journal(PathBuf),
    Stderr,
}

/// Installs the global logger. The journal is used when its socket accepts a connection and
/// stderr is not a terminal (a person at a terminal wants to see the log there); anything else
/// falls back to stderr. Never fails: a second call is ignored.
pub fn init(level: LevelFilter) -> Destination {
    let forced = std::env::var_os(JOURNAL_SOCKET_ENV).map(PathBuf::from);
    let path = forced
        .clone()
        .unwrap_or_else(|| PathBuf::from(JOURNAL_SOCKET));
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let journal = if forced.is_some() || !interactive {
        UnixDatagram::unbound()
            .and_then(|s| s.connect(&path).map(|()| s))
            .ok()
    } else {
        None
    };
    let (sink, dest) = match journal {
        Some(socket) => (Sink::Journal(socket), Destination::Journal(path)),
        None => (Sink::Stderr, Destination::Stderr),
    };
    if log::set_boxed_logger(Box::new(Logger { sink, level })).is_ok() {
        log::set_max_level(level);
    }
    dest
}

/// A phone number or address as logs may show it: only the last 4 characters unless the log
/// level is debug or finer.
pub fn peer(address: &str) -> String {
    if log::max_level() >= LevelFilter::Debug {
        address.to_string()
    } else {
        crate::phone::mask(address)
    }
}

fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// `msg_id` → `PASARELA_MSG_ID`: journal field names are upper-case letters, digits and `_`.
pub fn journal_field_name(key: &str) -> String {
    let mut name = String::from("PASARELA_");
    for c in key.chars() {
        name.push(if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        });
    }
    name
}

/// Appends one field in the journal's native format: `NAME=value\n`, or for values with a
/// newline `NAME\n` + 64-bit little-endian length + value + `\n`.
pub fn put_field(buf: &mut Vec<u8>, name: &str, value: &[u8]) {
    buf.extend_from_slice(name.as_bytes());
    if value.contains(&b'\n') {
        buf.push(b'\n');
        buf.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        buf.push(b'=');
    }
    buf.extend_from_slice(value);
    buf.push(b'\n');
}

struct KvCollector(Vec<(String, String)>);

impl<'kvs> log::kv::VisitSource<'kvs> for KvCollector {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        self.0.push((key.as_str().to_string(), value.to_string()));
        Ok(())
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut kv = KvCollector(Vec::new());
        let _ = record.key_values().visit(&mut kv);
        let mut message = record.args().to_string();
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        match &self.sink {
            Sink::Journal(socket) => {
                let mut buf = Vec::with_capacity(message.len() + 128);
                put_field(&mut buf, "MESSAGE", message.as_bytes());
                put_field(
                    &mut buf,
                    "PRIORITY",
                    syslog_priority(record.level()).to_string().as_bytes(),
                );
                put_field(&mut buf, "SYSLOG_IDENTIFIER", b"pasarela");
                put_field(&mut buf, "CODE_MODULE", record.target().as_bytes());
                for (k, v) in &kv.0 {
                    put_field(&mut buf, &journal_field_name(k), v.as_bytes());
                }
                if socket.send(&buf).is_err() {
                    write_stderr(record.level(), &message, &kv.0);
                }
            }
            Sink::Stderr => write_stderr(record.level(), &message, &kv.0),
        }
    }

    fn flush(&self) {}
}

fn write_stderr(level: Level, message: &str, kv: &[(String, String)]) {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
    let mut line = format!("{now} {level:<5} {message}");
    if !kv.is_empty() {
        line.push_str(" [");
        for (i, (k, v)) in kv.iter().enumerate() {
            if i > 0 {
                line.push(' ');
            }
            line.push_str(&format!("{k}={v}"));
        }
        line.push(']');
    }
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_encoding() {
        let mut buf = Vec::new();
        put_field(&mut buf, "MESSAGE", b"hola");
        put_field(&mut buf, "MESSAGE", b"a\nb");
        let mut want = b"MESSAGE=hola\nMESSAGE\n".to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"a\nb\n");
        assert_eq!(buf, want);
        assert_eq!(journal_field_name("msg_id"), "PASARELA_MSG_ID");
        assert_eq!(journal_field_name("a.b-c"), "PASARELA_A_B_C");
    }
}
