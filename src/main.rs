//! The `pasarela` binary: parses the command line, loads config, runs, picks the exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pasarela::config::{DEFAULT_CONFIG_PATH, Loaded};
use pasarela::{cli, daemon, logging};

#[derive(Parser)]
#[command(
    name = "pasarela",
    version,
    about = "Self-hosted SMS gateway for ISPs: GSM modems and Android phones, keyword auto-replies, a local admin API",
    long_about = "pasarela sends and receives SMS for an ISP, answers customers' keyword texts \
                  (SALDO, SOPORTE...) and keeps every message in one SQLite database.\n\n\
                  Installed from the .deb it runs as the systemd service `pasarela`; read its log \
                  with `journalctl -u pasarela -f`. Try it without hardware: `pasarela demo`."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (what the systemd service starts).
    Run {
        /// Configuration file.
        #[arg(long, default_value = DEFAULT_CONFIG_PATH, value_name = "PATH")]
        config: PathBuf,
    },
    /// Run the daemon on an embedded default: local database, generated token. Try the API
    /// with the curl lines it prints.
    Demo {
        /// Where the demo database lives.
        #[arg(long, default_value = "./pasarela-demo", value_name = "DIR")]
        dir: PathBuf,
        /// Admin API address.
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
        listen: String,
        /// Admin token to use instead of a generated one.
        #[arg(long, value_name = "TOKEN")]
        token: Option<String>,
        /// Control API of the simulated modem (make a customer text the gateway).
        #[arg(long, default_value = "127.0.0.1:8081", value_name = "ADDR")]
        sim_control: String,
        /// Password of the pages' user `admin` instead of a generated one.
        #[arg(long, value_name = "PASSWORD")]
        ui_password: Option<String>,
    },
    /// Manage the users of the web pages (in the database of the config's state directory).
    User {
        #[command(subcommand)]
        cmd: UserCommand,
        #[arg(long, default_value = DEFAULT_CONFIG_PATH, value_name = "PATH", global = true)]
        config: PathBuf,
    },
    /// Check a configuration file: exit 0 with a summary, or exit 2 naming each bad key and line.
    /// The file only, whoever runs it; the box's readiness (state directory, devices,
    /// permissions) is `doctor`'s.
    CheckConfig {
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// Also check that the state directory can be created and written, and the token file
        /// read, as the daemon does at start.
        #[arg(long)]
        strict: bool,
    },
    /// First run: find the modem, ask a few questions, write a commented config
    /// (`setup detect` only lists the modems).
    Setup(pasarela::firstrun::SetupArgs),
    /// Print the holidays the delivery windows honour in YEAR (default: this year): the
    /// country's national calendar, plus the config's windows.holidays, minus its
    /// windows.not_holidays.
    Holidays {
        #[arg(value_name = "YEAR")]
        year: Option<i32>,
        /// Whose national calendar (default: the config's windows.calendar or company.country).
        #[arg(long, value_name = "CODE")]
        country: Option<String>,
        /// The config whose added and removed days apply (default: /etc/pasarela/pasarela.toml
        /// when it can be read).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Queue one SMS through the running daemon's API (uses the config's address and token).
    Send {
        /// Recipient, in any usual form: +54 9 11 2345-6789, 011 15-2345-6789, 1123456789.
        #[arg(long, value_name = "NUMBER")]
        to: String,
        /// Message text.
        #[arg(long, value_name = "TEXT")]
        text: String,
        #[arg(long, default_value = DEFAULT_CONFIG_PATH, value_name = "PATH")]
        config: PathBuf,
    },
    /// Send a USSD request (like *444#, the prepaid credit) and print the network's answer.
    /// Menu answers follow the code and are sent in turn in the same session:
    /// `pasarela ussd '*150#' 1 2`. While the daemon runs it asks the daemon, which owns the
    /// modem; otherwise it opens the modem's port itself.
    Ussd {
        #[arg(value_name = "CODE")]
        code: String,
        /// Menu answers, in order.
        #[arg(value_name = "REPLY")]
        replies: Vec<String>,
        /// Which [[modem]] (needed when the config has several).
        #[arg(long, value_name = "NAME")]
        modem: Option<String>,
        #[arg(long, default_value = DEFAULT_CONFIG_PATH, value_name = "PATH")]
        config: PathBuf,
    },
    /// Manage the customer directory of the running daemon.
    Customers {
        #[command(subcommand)]
        cmd: CustomersCommand,
    },
    /// Decode and encode SMS PDUs as a modem shows them (AT+CMGF=0), for debugging.
    Pdu {
        #[command(subcommand)]
        cmd: pasarela::sms::cli::PduCommand,
    },
    /// An AT modem simulator on a pseudo-terminal, with an HTTP control API (for tests and demos).
    ModemSim(pasarela::modem::sim::cli::ModemSimArgs),
    /// Check an installed box and say what is wrong: config, permissions, modem, SIM, signal,
    /// journal, admin API. One line per check with the fix; exit 0 when all pass, 1 otherwise.
    Doctor {
        #[arg(long, default_value = DEFAULT_CONFIG_PATH, value_name = "PATH")]
        config: PathBuf,
        /// The user the service runs as: permissions are checked for it.
        #[arg(long, default_value = pasarela::doctor::SERVICE_USER, value_name = "USER")]
        user: String,
    },
    /// Write a consistent copy of the database to PATH (a new file). Safe while the daemon runs.
    Backup {
        #[arg(value_name = "PATH")]
        path: PathBuf,
        #[arg(long, default_value = DEFAULT_CONFIG_PATH, value_name = "PATH")]
        config: PathBuf,
    },
    /// Replace the database with a copy made by `backup`. Refuses while the daemon runs; the
    /// replaced database is kept beside it.
    Restore {
        #[arg(value_name = "PATH")]
        path: PathBuf,
        #[arg(long, default_value = DEFAULT_CONFIG_PATH, value_name = "PATH")]
        config: PathBuf,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from standard input, or asked for on a terminal.
    Add {
        #[arg(value_name = "NAME")]
        name: String,
        /// `operator` sends, replies and handles tickets; `admin` also changes rules and users.
        #[arg(long, value_parser = ["admin", "operator"])]
        role: String,
    },
    /// Change a user's password (read like `add`) and end their sessions.
    Passwd {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// List the users: name, role, language.
    List,
}

#[derive(Subcommand)]
enum CustomersCommand {
    /// Import customers from a CSV file with a header row (codigo,nombre,telefono,email,deuda,…);
    /// rows are upserted by code. Prints inserted / updated / rejected with line numbers.
    Import {
        #[arg(value_name = "FILE.csv")]
        file: PathBuf,
        #[arg(long, default_value = DEFAULT_CONFIG_PATH, value_name = "PATH")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("pasarela {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::CheckConfig { path, strict } => check_config(&path, strict),
        Command::Setup(args) => pasarela::firstrun::run(args),
        Command::Holidays {
            year,
            country,
            config,
        } => report(
            "holidays",
            cli::holidays(config.as_deref(), country.as_deref(), year),
        ),
        Command::Pdu { cmd } => {
            ExitCode::from(u8::try_from(pasarela::sms::cli::run(cmd)).unwrap_or(1))
        }
        Command::Run { config } => match pasarela::setup::load(&config) {
            Ok(loaded) => serve(loaded),
            Err(e) => {
                eprintln!("{}: {e}", config.display());
                ExitCode::from(2)
            }
        },
        Command::Demo {
            dir,
            listen,
            token,
            sim_control,
            ui_password,
        } => demo(dir, listen, token, sim_control, ui_password),
        Command::User { cmd, config } => user(cmd, &config),
        Command::ModemSim(args) => pasarela::modem::sim::cli::run(args),
        Command::Doctor { config, user } => {
            let opts = pasarela::doctor::Options { config, user };
            let checks = runtime().block_on(pasarela::doctor::run(&opts, &mut |c| println!("{c}")));
            if checks.iter().any(|c| c.failed()) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Customers {
            cmd: CustomersCommand::Import { file, config },
        } => {
            let rt = runtime();
            match rt.block_on(cli::import_customers(&config, &file)) {
                Ok(report) => {
                    println!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("pasarela customers import: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Ussd {
            code,
            replies,
            modem,
            config,
        } => match runtime().block_on(cli::ussd(&config, modem.as_deref(), &code, &replies)) {
            Ok((answer, notes)) => {
                print!("{answer}");
                for n in notes {
                    eprintln!("note: {n}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pasarela ussd: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Backup { path, config } => report("backup", cli::backup(&config, &path)),
        Command::Restore { path, config } => report("restore", cli::restore(&config, &path)),
        Command::Send { to, text, config } => {
            let rt = runtime();
            match rt.block_on(cli::send(&config, &to, &text)) {
                Ok(line) => {
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("pasarela send: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Prints a command's one-line result, or its error; exit 0 or 1.
fn report(command: &str, result: anyhow::Result<String>) -> ExitCode {
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pasarela {command}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn user(cmd: UserCommand, config: &std::path::Path) -> ExitCode {
    use pasarela::web::accounts;
    let loaded = match pasarela::setup::load(config) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{}: {e}", config.display());
            return ExitCode::from(2);
        }
    };
    let state_dir = loaded.config.daemon.state_dir.clone();
    let result = runtime().block_on(async move {
        let store = pasarela::store::Store::open(&state_dir)?;
        let outcome = match cmd {
            UserCommand::Add { name, role } => {
                let role = pasarela::store::users::Role::parse(&role)
                    .ok_or_else(|| anyhow::anyhow!("--role must be admin or operator"))?;
                let password = accounts::read_password("Password: ")?;
                accounts::add(&store, &name, role, &password)
                    .await
                    .map(|()| vec![format!("user {name} added ({role})")])
            }
            UserCommand::Passwd { name } => {
                let password = accounts::read_password("New password: ")?;
                accounts::passwd(&store, &name, &password)
                    .await
                    .map(|()| vec![format!("password of {name} changed; their sessions ended")])
            }
            UserCommand::List => accounts::list(&store).await,
        };
        store.close().await;
        outcome
    });
    match result {
        Ok(lines) => {
            lines.iter().for_each(|l| println!("{l}"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pasarela user: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: &std::path::Path, strict: bool) -> ExitCode {
    let loaded = match pasarela::setup::load(path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{}: configuration is not valid:\n{e}", path.display());
            return ExitCode::from(2);
        }
    };
    let checked = if strict {
        loaded.check_environment()
    } else {
        loaded.check_files()
    };
    match checked {
        Ok(warnings) => {
            for w in warnings {
                eprintln!("warning: {w}");
            }
            println!("{}", cli::summary(&loaded));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            ExitCode::from(2)
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    // Two workers: the box is a Raspberry Pi or a small server, and the work is I/O.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the async runtime starts")
}

/// The daemon's runtime: one thread. Its work is waiting on sockets, the serial port and the
/// database threads (SQLite runs on the store's own threads, CPU-heavy steps such as password
/// hashes and CSV parsing go to `spawn_blocking`), and an idle gateway should cost next to
/// nothing: a single thread has no sibling workers to wake and no per-worker memory.
/// `benches/idle.rs` measures the idle figures, `benches/api.rs` the accept rate.
fn daemon_runtime() -> tokio::runtime::Runtime {
    limit_malloc_arenas();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts")
}

/// glibc gives each thread that allocates its own arena (up to 8 per core), each holding its
/// own free memory and a heap mapping of its own; the daemon's few threads share one. Its
/// threads' frequent small allocations come from per-thread caches (tcache) without the
/// arena's lock, so one arena costs the accept rate nothing measurable (`benches/api.rs`).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of the allocator; it is called before any other
    // thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

fn serve(loaded: Loaded) -> ExitCode {
    logging::init(loaded.config.daemon.log_level.to_filter());
    match loaded.check_environment() {
        Ok(warnings) => warnings.iter().for_each(|w| log::warn!("{w}")),
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(2);
        }
    }
    let rt = daemon_runtime();
    match rt.block_on(daemon::run(loaded, daemon::Parts::default(), stop_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn demo(
    dir: PathBuf,
    listen: String,
    token: Option<String>,
    sim_control: String,
    ui_password: Option<String>,
) -> ExitCode {
    let fail = |code: u8, msg: String| {
        eprintln!("demo: {msg}");
        ExitCode::from(code)
    };
    let dir = match std::path::absolute(&dir) {
        Ok(d) => d,
        Err(e) => return fail(2, format!("bad --dir {}: {e}", dir.display())),
    };
    let sim_addr: std::net::SocketAddr = match sim_control.parse() {
        Ok(a) => a,
        Err(_) => {
            return fail(
                2,
                format!("--sim-control `{sim_control}` is not an address like 127.0.0.1:8081"),
            );
        }
    };
    let token = match token.map(Ok).unwrap_or_else(cli::generate_token) {
        Ok(t) => t,
        Err(e) => return fail(1, format!("{e:#}")),
    };
    let ui_password = match ui_password
        .map(Ok)
        .unwrap_or_else(|| cli::generate_token().map(|t| t[..12].to_string()))
    {
        Ok(p) => p,
        Err(e) => return fail(1, format!("{e:#}")),
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return fail(2, format!("cannot create {}: {e}", dir.display()));
    }
    let link = dir.join("modem");
    // The demo runs with a file it writes, so `pasarela send --config DIR/pasarela.toml` and
    // every other command reach it.
    let config_path = dir.join("pasarela.toml");
    let text = cli::demo_config(&dir, &listen, &token, &link);
    if let Err(e) = write_private(&config_path, &text) {
        return fail(2, format!("cannot write {}: {e}", config_path.display()));
    }
    let loaded = match pasarela::setup::load(&config_path) {
        Ok(l) => l,
        Err(e) => return fail(2, e.to_string()),
    };
    let base = match daemon::api_base(&loaded) {
        Ok(b) => b,
        Err(e) => return fail(2, format!("{e:#}")),
    };
    logging::init(loaded.config.daemon.log_level.to_filter());
    let rt = runtime();
    let result = rt.block_on(async {
        let mut opts = pasarela::modem::sim::SimOptions::new(&link);
        opts.control = Some(sim_addr);
        // Delivery reports arrive two seconds after each send, as on a real network.
        opts.config.status_report_delay_ms = Some(2000);
        let sim = pasarela::modem::sim::start(opts).await?;
        {
            let store = pasarela::store::Store::open(&dir)?;
            let seeded =
                cli::seed_demo_customers(&store, &loaded.config.company.phone_context()).await?;
            pasarela::web::accounts::ensure_admin(&store, "admin", &ui_password).await?;
            store.close().await;
            if seeded > 0 {
                println!("{seeded} sample customers loaded (GET /api/customers?q=)");
            }
        }
        let sim_base = format!("http://{}", sim.control_addr().unwrap_or(sim_addr));
        println!("pasarela demo: database in {}, simulated modem at {}", dir.display(), link.display());
        println!(
            "config: {} (try: pasarela send --config {} --to 1123456789 --text Hola)",
            config_path.display(),
            config_path.display()
        );
        println!("admin token: {token}");
        println!("web pages: {base}/  user: admin  password: {ui_password}");
        println!("a customer texts the gateway (Ana Pérez asks for her balance, then opens a ticket):");
        println!(
            "  curl -s -d '{{\"from\":\"+5491123456789\",\"text\":\"Hola, ¿cuál es mi saldo?\"}}' {sim_base}/inbound"
        );
        println!(
            "  curl -s -d '{{\"from\":\"+5491123456789\",\"text\":\"soporte: sin internet\"}}' {sim_base}/inbound"
        );
        println!("the billing system reports a payment:");
        println!(
            "  curl -s -H 'Authorization: Bearer {token}' -d '{{\"id\":\"pago-1\",\"type\":\"payment\",\"customer\":\"1001\",\"amount\":\"1234.50\",\"method\":\"manual\",\"balance\":\"0\"}}' {base}/api/events"
        );
        println!("tickets: curl -s -H 'Authorization: Bearer {token}' {base}/api/tickets");
        println!("send an SMS:");
        println!(
            "  curl -s -H 'Authorization: Bearer {token}' -d '{{\"to\":\"011 15-2345-6789\",\"text\":\"Su pago fue registrado. ¡Gracias!\"}}' {base}/api/messages"
        );
        println!("list messages:");
        println!("  curl -s -H 'Authorization: Bearer {token}' {base}/api/messages");
        println!("what the modem sent: curl -s {sim_base}/sent    status: curl -s -H 'Authorization: Bearer {token}' {base}/api/status");
        println!("Stop with Ctrl-C.");
        let outcome = daemon::run(loaded, daemon::Parts::default(), stop_signal()).await;
        sim.shutdown().await;
        outcome
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes `text` to `path`, readable by its owner only (it holds the admin token).
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(text.as_bytes())
}

/// Resolves on SIGTERM (systemctl stop) or SIGINT (Ctrl-C).
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    tokio::select! {
        _ = term.recv() => log::info!("SIGTERM received"),
        _ = int.recv() => log::info!("SIGINT received"),
    }
}
