//! Stand-in binary that only dispatches `pasarela pdu`; the daemon's real `main` replaces it.

use clap::{Parser, Subcommand};
use pasarela::sms::cli::PduCommand;

#[derive(Parser)]
#[command(name = "pasarela", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode and encode SMS PDUs (AT+CMGF=0 format).
    Pdu {
        #[command(subcommand)]
        cmd: PduCommand,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Pdu { cmd } => pasarela::sms::cli::run(cmd),
    };
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
