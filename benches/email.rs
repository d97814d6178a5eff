//! Email benchmark: 1,000 mails, each with the same 200 KB PDF attached, through one
//! `[[email]]` account's SMTP route (the real lettre transport, sends one after another, so one
//! pooled connection carries them) to a local SMTP sink on loopback (a few lines of Python's
//! asyncio that answer the dialogue and discard the data). Prints JSON lines: mails/s against
//! the issue's target (>= 50), peak RSS of this process while sending (VmHWM, target <= 40 MB),
//! and the machine. `PASARELA_BENCH_QUICK=1` sends 100.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use pasarela::config::EmailConfig;
use pasarela::model::{Attachment, Content, Email, MessageId, Outgoing};
use pasarela::transport::Transport;
use pasarela::transport::email::EmailTransport;
use serde_json::json;

/// An SMTP server that accepts everything and keeps nothing.
const SINK: &str = r#"
import asyncio
async def serve(reader, writer):
    writer.write(b"220 sink ESMTP\r\n")
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = line[:4].upper()
        if cmd in (b"EHLO", b"HELO"):
            writer.write(b"250-sink\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n")
        elif cmd == b"DATA":
            writer.write(b"354 go ahead\r\n")
            await writer.drain()
            await reader.readuntil(b"\r\n.\r\n")
            writer.write(b"250 2.0.0 Ok: discarded\r\n")
        elif cmd == b"QUIT":
            writer.write(b"221 bye\r\n")
            await writer.drain()
            break
        else:
            writer.write(b"250 Ok\r\n")
        await writer.drain()
    writer.close()
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0, limit=1 << 24)
    print("PORT", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"#;

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown cpu".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{} {cores} cores, {cpu}", std::env::consts::ARCH)
}

/// A PDF-looking body of `len` bytes (header, then bytes that do not compress).
fn pdf(len: usize) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut x: u32 = 0x2545_4f46;
    while out.len() < len - 6 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.push(x as u8);
    }
    out.extend_from_slice(b"%%EOF\n");
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = if std::env::var_os("PASARELA_BENCH_QUICK").is_some() {
        100
    } else {
        1000
    };
    let mut sink = Command::new("python3")
        .args(["-c", SINK])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 for the SMTP sink");
    let mut line = String::new();
    BufReader::new(sink.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().trim_start_matches("PORT ").parse().unwrap();

    let cfg: EmailConfig = toml::from_str(&format!(
        r#"
        name = "facturas"
        areas = ["todo"]
        from = "Facturación Fibra Sur <facturas@fibrasur.com.ar>"
        host = "127.0.0.1"
        port = {port}
        security = "none"
        allow_plain = true
        "#
    ))
    .unwrap();
    let account = EmailTransport::new(cfg).unwrap();
    let attachment = Attachment {
        filename: "factura-0001-00001234.pdf".into(),
        content_type: "application/pdf".into(),
        bytes: pdf(200 * 1024),
    };
    let content = Arc::new(Content::Email(Email {
        subject: "Factura N° 0001-00001234 — vence 10/12".into(),
        text: "Hola Ana, adjuntamos su factura.".into(),
        html: Some("<p>Hola Ana, adjuntamos su <b>factura</b>.</p>".into()),
        attachments: vec![attachment],
    }));

    let rss_before = status_kb("VmRSS:");
    let started = Instant::now();
    let mut failed = 0;
    for i in 0..n {
        let message = Outgoing {
            id: MessageId(i as i64 + 1),
            to: format!("cliente{i}@example.com"),
            content: (*content).clone(),
            attempt: 1,
            priority: pasarela::model::Priority::Notification,
        };
        if let Err(e) = account.send(&message).await {
            failed += 1;
            eprintln!("mail {i}: {e}");
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let peak_kb = status_kb("VmHWM:");
    let _ = sink.kill();
    let _ = sink.wait();

    let rate = n as f64 / secs;
    let peak_mb = peak_kb as f64 / 1024.0;
    println!(
        "{}",
        json!({"bench": "email_send", "mails": n, "attachment_kb": 200, "failed": failed,
               "seconds": (secs * 100.0).round() / 100.0,
               "mails_per_s": (rate * 10.0).round() / 10.0, "target": 50, "target_met": rate >= 50.0 && failed == 0,
               "profile": if cfg!(debug_assertions) { "debug" } else { "release" }})
    );
    println!(
        "{}",
        json!({"bench": "email_rss", "rss_before_mb": (rss_before as f64 / 102.4).round() / 10.0,
               "peak_rss_mb": (peak_mb * 10.0).round() / 10.0, "target_mb": 40, "target_met": peak_mb <= 40.0})
    );
    println!(
        "{}",
        json!({"bench": "email_machine", "machine": machine()})
    );
}
