//! A serial port (or the slave side of a pseudo-terminal) as an async byte stream, through
//! `tokio-serial`: raw mode, 8N1, no flow control, at the configured speed. The port is opened
//! exclusively (`TIOCEXCL` and an exclusive `flock`), so a second process (ModemManager, a
//! stray `gammu`) cannot open it and interleave AT commands while pasarela holds it. A device
//! that disappears (USB unplugged, pty closed) reads as end of file or an I/O error, which the
//! driver treats as "reconnect".

use std::io;
use std::path::Path;

use tokio_serial::{SerialPortBuilderExt, SerialStream};

/// An open serial port: `AsyncRead + AsyncWrite`.
pub type SerialPort = SerialStream;

/// Speeds a modem may be set to.
const BAUDS: [u32; 8] = [9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600];

/// Opens `path` (following symlinks such as `/dev/serial/by-id/…`) exclusively in raw mode.
pub fn open(path: &Path, baud: u32) -> io::Result<SerialPort> {
    if !BAUDS.contains(&baud) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unsupported baud rate {baud}"),
        ));
    }
    let port = tokio_serial::new(path.to_string_lossy(), baud)
        .data_bits(tokio_serial::DataBits::Eight)
        .parity(tokio_serial::Parity::None)
        .stop_bits(tokio_serial::StopBits::One)
        .flow_control(tokio_serial::FlowControl::None)
        .open_native_async()
        .map_err(|e| {
            let kind = match e.kind() {
                tokio_serial::ErrorKind::NoDevice => io::ErrorKind::NotFound,
                tokio_serial::ErrorKind::InvalidInput => io::ErrorKind::InvalidInput,
                tokio_serial::ErrorKind::Io(kind) => kind,
                _ => io::ErrorKind::Other,
            };
            // The exclusive lock (or TIOCEXCL) refused: someone else has the port.
            if kind == io::ErrorKind::WouldBlock || e.description.contains("lock") {
                return io::Error::new(
                    io::ErrorKind::ResourceBusy,
                    format!(
                        "the port is in use by another program (ModemManager, gammu?): {}",
                        e.description
                    ),
                );
            }
            io::Error::new(kind, e.description)
        })?;
    // Stale bytes from before we opened it are not answers to our commands.
    use tokio_serial::SerialPort as _;
    port.clear(tokio_serial::ClearBuffer::All)
        .map_err(|e| io::Error::other(e.description))?;
    Ok(port)
}
