//! `pasarela modem-sim`: runs the simulator until SIGINT or SIGTERM, then removes the link.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use super::{SimOptions, start};

#[derive(Debug, Clone, clap::Args)]
pub struct ModemSimArgs {
    /// Symlink to create, pointing at the modem's pseudo-terminal (give it to Gammu or the
    /// modem driver as the port).
    #[arg(long, value_name = "PATH")]
    pub link: PathBuf,
    /// Address of the HTTP control API (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8081", value_name = "ADDR")]
    pub control: String,
}

fn resolve(addr: &str) -> Option<SocketAddr> {
    addr.parse()
        .ok()
        .or_else(|| addr.to_socket_addrs().ok()?.next())
}

/// Runs the simulator in the foreground; exit 2 for a bad address, 1 when it cannot start.
pub fn run(args: ModemSimArgs) -> ExitCode {
    let Some(control) = resolve(&args.control) else {
        eprintln!("modem-sim: --control {}: not an address", args.control);
        return ExitCode::from(2);
    };
    let link = match std::path::absolute(&args.link) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("modem-sim: --link {}: {e}", args.link.display());
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("modem-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let mut opts = SimOptions::new(link);
        opts.control = Some(control);
        let handle = match start(opts).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("modem-sim: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        let device = handle
            .device()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        if let Some(addr) = handle.control_addr() {
            println!(
                "modem-sim: AT modem on {} -> {device}, control API on http://{addr}",
                handle.link().display()
            );
        }
        if let Err(e) = stop_signal().await {
            eprintln!("modem-sim: {e}");
        }
        handle.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn stop_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
