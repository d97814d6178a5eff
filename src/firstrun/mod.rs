//! `pasarela setup`: the first hour on a new box. It finds the modem ([`detect`]), asks for the
//! company, country, modem, SIM PIN and admin address (or takes them from flags with `--yes`),
//! writes a commented config that passes every check of [`crate::setup`], and offers a test SMS.
//!
//! It never overwrites a config without `--force`, writes the file readable by its owner and
//! group only (it holds the admin token and the PIN), and never types the PIN into the modem:
//! the daemon does that once, at start.

pub mod detect;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::config::{DEFAULT_CONFIG_PATH, Loaded};

/// The wait for `AT` on each port.
pub const DETECT_TIMEOUT: Duration = Duration::from_millis(2000);

#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SetupArgs {
    #[command(subcommand)]
    pub detect: Option<SetupCommand>,
    /// Where to write the config.
    #[arg(long, default_value = DEFAULT_CONFIG_PATH, value_name = "PATH")]
    pub config: PathBuf,
    /// Replace an existing config file.
    #[arg(long)]
    pub force: bool,
    /// Ask nothing: take the flags, and the defaults for the rest (for scripts).
    #[arg(long)]
    pub yes: bool,
    /// Company name, as customers know it (the %empresa% of texts).
    #[arg(long, value_name = "NAME")]
    pub company: Option<String>,
    /// Country (ISO 3166 code): how phone numbers are read and whose holidays apply.
    #[arg(long, value_name = "CODE")]
    pub country: Option<String>,
    /// Time zone (IANA name); default: the country's, else this box's.
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
    /// The modem's serial port; default: the one `setup detect` recommends.
    #[arg(long, value_name = "PATH", conflicts_with = "no_modem")]
    pub device: Option<PathBuf>,
    /// No GSM modem (an Android phone or an HTTP provider will be the route).
    #[arg(long)]
    pub no_modem: bool,
    /// The SIM's PIN, if it asks for one (the daemon enters it once at start).
    #[arg(long, value_name = "PIN")]
    pub pin: Option<String>,
    /// Address of the admin pages and API.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Where the database lives.
    #[arg(long, default_value = "/var/lib/pasarela", value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Send a test SMS to this number once the config is written.
    #[arg(long, value_name = "NUMBER")]
    pub test_sms: Option<String>,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum SetupCommand {
    /// List the modems on this box, one line each, and which port of each to use.
    Detect {
        /// Probe only these ports (repeat it); default: /dev/serial/by-id/*, /dev/ttyUSB*,
        /// /dev/ttyACM* and /dev/ttyAMA*.
        #[arg(long = "device", value_name = "PATH")]
        devices: Vec<PathBuf>,
        /// Milliseconds each port gets to answer AT.
        #[arg(long, default_value_t = DETECT_TIMEOUT.as_millis() as u64, value_name = "MS")]
        timeout_ms: u64,
    },
}

/// Where the admin token lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// In the config itself (the file is written 0640).
    Inline(String),
    /// In a file of its own (the Debian package makes `/etc/pasarela/admin.token`).
    File(PathBuf),
}

/// What the config is made from.
#[derive(Debug, Clone)]
pub struct Answers {
    pub company: String,
    pub country: String,
    pub timezone: String,
    pub device: Option<PathBuf>,
    pub pin: Option<String>,
    pub listen: String,
    pub state_dir: PathBuf,
    pub token: Token,
}

/// A TOML string literal.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The config file's text: every key with a line saying what it is, routes other than the
/// modem shown commented.
pub fn render(a: &Answers) -> String {
    let mut t = String::new();
    // Spanish where customers speak it, English elsewhere.
    const SPANISH: [&str; 19] = [
        "AR", "BO", "CL", "CO", "CR", "CU", "DO", "EC", "ES", "GT", "HN", "MX", "NI", "PA", "PE",
        "PY", "SV", "UY", "VE",
    ];
    let language = if SPANISH
        .iter()
        .any(|c| c.eq_ignore_ascii_case(a.country.trim()))
    {
        "es"
    } else {
        "en"
    };
    t.push_str(&format!(
        "# pasarela configuration, written by `pasarela setup`.\n\
         # Check it after every edit with `pasarela check-config PATH` and apply it with\n\
         # `systemctl restart pasarela`. Every key is explained in the example config\n\
         # (/usr/share/doc/pasarela/examples/pasarela.toml, or config/pasarela.toml in the sources).\n\n\
         [company]\n\
         # Your company's name, as customers know it: the %empresa% of every template.\n\
         name = {}\n\
         # Time zone of delivery windows and of dates in texts (IANA name).\n\
         timezone = {}\n\
         # Country: how numbers without a country code are read, and whose national holidays\n\
         # the delivery windows honour (`pasarela holidays` lists them).\n\
         country = {}\n\
         # Language of texts to customers and of the admin pages: \"es\" or \"en\".\n\
         language = \"{language}\"\n\n",
        quoted(&a.company),
        quoted(&a.timezone),
        quoted(&a.country.to_ascii_uppercase()),
    ));
    t.push_str(&format!(
        "[admin]\n\
         # Address of the admin pages and API. 127.0.0.1 keeps them on this box; \"0.0.0.0:8080\"\n\
         # opens them to the LAN (behind a firewall).\n\
         listen = {}\n\
         # The API's token (`Authorization: Bearer <token>`); `pasarela send` reads it from here.\n",
        quoted(&a.listen)
    ));
    match &a.token {
        Token::Inline(tok) => t.push_str(&format!("token = {}\n\n", quoted(tok))),
        Token::File(p) => t.push_str(&format!(
            "token_file = {}\n\n",
            quoted(&p.to_string_lossy())
        )),
    }
    t.push_str(&format!(
        "[daemon]\n\
         # Where the database lives; writable by the service user.\n\
         state_dir = {}\n\
         log_level = \"info\"\n\n",
        quoted(&a.state_dir.to_string_lossy())
    ));
    t.push_str(
        "[windows]\n\
         # Notifications and bulk wait for their window (laboral, extendido, fulltime, always):\n\
         # reminders every day 07-23, campaigns and bulk Monday to Friday 08-21, never at night.\n\
         notifications = \"fulltime\"\n\
         bulk = \"extendido\"\n\
         # The country's national holidays are computed each year. Days to add (provincial\n\
         # holidays, a \"día no laborable\" decreed this year) and days to take out, YYYY-MM-DD:\n\
         holidays = []\n\
         not_holidays = []\n\n",
    );
    match &a.device {
        Some(dev) => {
            t.push_str(&format!(
                "# The GSM modem (found by `pasarela setup detect`).\n\
                 [[modem]]\n\
                 name = \"modem1\"\n\
                 # Serial port: the stable /dev/serial/by-id/ name survives a replug.\n\
                 device = {}\n\
                 baud = 115200\n",
                quoted(&dev.to_string_lossy())
            ));
            match &a.pin {
                Some(pin) => t.push_str(&format!(
                    "# SIM PIN: tried ONCE at start; a rejected PIN is not retried until you change it.\n\
                     pin = {}\n",
                    quoted(pin)
                )),
                None => t.push_str("# SIM PIN, only if the SIM asks for one (tried once).\n# pin = \"1234\"\n"),
            }
            t.push_str("# Ask the network for delivery reports.\nstatus_reports = true\n\n");
        }
        None => t.push_str(
            "# No GSM modem was chosen. To add one (see `pasarela setup detect`):\n\
             # [[modem]]\n\
             # name = \"modem1\"\n\
             # device = \"/dev/serial/by-id/usb-…-if00-port0\"\n\
             # pin = \"1234\"\n\n",
        ),
    }
    t.push_str(
        "# Other routes ([[android]] phones, [[http_sms]] providers, [[email]], [whatsapp]) are\n\
         # shown, commented, in the example config; copy the table you need here.\n",
    );
    t
}

/// Writes `text` to `path` (creating its directory), readable by owner and group only; an
/// existing file is replaced only with `force`.
pub fn write_config(path: &Path, text: &str, force: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() && !force {
        bail!(
            "{} exists; pass --force to replace it (or --config to write elsewhere)",
            path.display()
        );
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // Written beside it and renamed: a failed write never leaves half a config.
    let tmp = path.with_extension("toml.new");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    // The service reads it through its group: keep the replaced file's group, else take the
    // directory's (the package makes /etc/pasarela root:pasarela).
    use std::os::unix::fs::MetadataExt;
    let group = std::fs::metadata(path)
        .or_else(|_| std::fs::metadata(path.parent().unwrap_or(Path::new("."))))
        .map(|m| m.gid());
    if let Ok(gid) = group {
        // Best effort: a user who is not in that group keeps their own.
        let _ = std::os::unix::fs::chown(&tmp, None, Some(gid));
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The time zone of `country` when it has one, else this box's (`/etc/timezone`), else UTC.
pub fn default_timezone(country: &str) -> String {
    if country.eq_ignore_ascii_case("AR") {
        return "America/Argentina/Buenos_Aires".to_string();
    }
    std::fs::read_to_string("/etc/timezone")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| s.parse::<chrono_tz::Tz>().is_ok())
        .unwrap_or_else(|| "UTC".to_string())
}

/// Asks questions on standard error and reads the answers from `input`.
pub struct Asker<'a> {
    input: &'a mut dyn BufRead,
    out: &'a mut dyn Write,
}

impl<'a> Asker<'a> {
    pub fn new(input: &'a mut dyn BufRead, out: &'a mut dyn Write) -> Self {
        Asker { input, out }
    }

    /// The answer, or `default` for an empty line (or end of input).
    pub fn ask(&mut self, question: &str, default: &str) -> anyhow::Result<String> {
        if default.is_empty() {
            write!(self.out, "{question}: ")?;
        } else {
            write!(self.out, "{question} [{default}]: ")?;
        }
        self.out.flush()?;
        let mut line = String::new();
        self.input.read_line(&mut line)?;
        let answer = line.trim();
        Ok(if answer.is_empty() {
            default.to_string()
        } else {
            answer.to_string()
        })
    }
}

/// Checks the answers the way the daemon will: the rendered text through every config check.
fn checked(a: &Answers) -> anyhow::Result<(String, Loaded)> {
    let text = render(a);
    let loaded = crate::setup::from_toml(&text)
        .map_err(|e| anyhow::anyhow!("the answers do not make a valid config:\n{e}"))?;
    Ok((text, loaded))
}

/// `pasarela setup` and `pasarela setup detect`.
pub fn run(args: SetupArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pasarela setup: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(SetupCommand::Detect {
        devices,
        timeout_ms,
    }) = &args.detect
    {
        let ports = rt.block_on(print_detect(devices, Duration::from_millis(*timeout_ms)));
        return if ports
            .iter()
            .any(|p| matches!(p.outcome, detect::Outcome::Modem(_)))
        {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    match rt.block_on(setup(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pasarela setup: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Probes, prints one line per port and the recommendation for each modem.
async fn print_detect(devices: &[PathBuf], timeout: Duration) -> Vec<detect::Port> {
    let ports = detect::detect(devices, timeout).await;
    if ports.is_empty() {
        println!(
            "no serial ports found (/dev/serial/by-id/*, /dev/ttyUSB*, /dev/ttyACM*, /dev/ttyAMA*): \
             plug the modem in, wait 10 s and try again; `lsusb` shows whether it is seen"
        );
    }
    for p in &ports {
        println!("{p}");
    }
    for c in detect::choose(&ports) {
        println!(
            "use {} for the modem with IMEI {}: {}",
            c.path.display(),
            c.imei,
            c.why
        );
    }
    ports
}

/// Checks of single answers, so a bad one is asked again at once (or, from a flag, named).
fn check_country(v: &str) -> Result<(), String> {
    crate::phone::PhoneContext::new(v, None)
        .map(|_| ())
        .map_err(|_| format!("`{v}` is not a two-letter country code like AR, UY or CL"))
}

fn check_timezone(v: &str) -> Result<(), String> {
    v.parse::<chrono_tz::Tz>()
        .map(|_| ())
        .map_err(|_| format!("`{v}` is not a time zone like America/Argentina/Buenos_Aires"))
}

fn check_listen(v: &str) -> Result<(), String> {
    v.parse::<std::net::SocketAddr>()
        .map(|_| ())
        .map_err(|_| format!("`{v}` is not an address like 127.0.0.1:8080"))
}

fn check_pin(v: &str) -> Result<(), String> {
    if v.is_empty() || ((4..=8).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit())) {
        Ok(())
    } else {
        Err("a SIM PIN is 4 to 8 digits".to_string())
    }
}

fn check_any(_: &str) -> Result<(), String> {
    Ok(())
}

/// Asks (or takes the flag's value, or the default with `--yes`) until `check` passes; a bad
/// flag is an error naming it.
struct Questions<'a> {
    asker: Asker<'a>,
    interactive: bool,
}

impl Questions<'_> {
    fn get(
        &mut self,
        question: &str,
        flag: (&str, &Option<String>),
        default: &str,
        check: fn(&str) -> Result<(), String>,
    ) -> anyhow::Result<String> {
        if let Some(v) = flag.1 {
            check(v).map_err(|e| anyhow::anyhow!("--{}: {e}", flag.0))?;
            return Ok(v.clone());
        }
        if !self.interactive {
            return Ok(default.to_string());
        }
        for _ in 0..3 {
            let answer = self.asker.ask(question, default)?;
            match check(&answer) {
                Ok(()) => return Ok(answer),
                Err(e) => writeln!(self.asker.out, "  {e}")?,
            }
        }
        bail!("{question}: no valid answer")
    }
}

/// The SIM state of the modem at `path`, from a fresh probe (`None` when it did not answer).
async fn sim_state(path: &Path) -> Option<String> {
    match detect::probe(path, DETECT_TIMEOUT).await {
        detect::Outcome::Modem(m) => Some(m.sim),
        other => {
            eprintln!(
                "note: {}",
                detect::Port {
                    path: path.to_path_buf(),
                    device: None,
                    outcome: other
                }
            );
            None
        }
    }
}

async fn setup(args: SetupArgs) -> anyhow::Result<()> {
    if args.config.exists() && !args.force {
        bail!(
            "{} exists; pass --force to replace it (or --config to write elsewhere)",
            args.config.display()
        );
    }
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut stderr = std::io::stderr();
    let mut q = Questions {
        asker: Asker::new(&mut input, &mut stderr),
        interactive: !args.yes,
    };
    let company = q.get(
        "Company name, as customers know it",
        ("company", &args.company),
        "Mi ISP",
        check_any,
    )?;
    let country = q.get(
        "Country (ISO code: AR, UY, CL…)",
        ("country", &args.country),
        "AR",
        check_country,
    )?;
    let timezone = q.get(
        "Time zone",
        ("timezone", &args.timezone),
        &default_timezone(&country),
        check_timezone,
    )?;

    let (device, sim) = if args.no_modem {
        (None, None)
    } else if let Some(d) = &args.device {
        (Some(d.clone()), sim_state(d).await)
    } else {
        eprintln!("Looking for modems…");
        let ports = detect::detect(&[], DETECT_TIMEOUT).await;
        for p in &ports {
            eprintln!("  {p}");
        }
        let choices = detect::choose(&ports);
        for c in &choices {
            eprintln!("  use {}: {}", c.path.display(), c.why);
        }
        let suggested = choices.first().map_or("none".to_string(), |c| {
            c.path.to_string_lossy().into_owned()
        });
        let answer = q.get(
            "Modem port (\"none\" for an Android phone or provider only)",
            ("device", &None),
            &suggested,
            check_any,
        )?;
        if answer.eq_ignore_ascii_case("none") {
            (None, None)
        } else {
            let path = PathBuf::from(answer);
            let known = ports
                .iter()
                .find(|p| p.path == path)
                .and_then(|p| match &p.outcome {
                    detect::Outcome::Modem(m) => Some(m.sim.clone()),
                    _ => None,
                });
            let state = match known {
                Some(s) => Some(s),
                None => sim_state(&path).await,
            };
            (Some(path), state)
        }
    };
    // Asked only when the SIM wants one (or its state is unknown); never typed here.
    let pin_flag = args.pin.clone();
    let pin = if pin_flag.is_some() || (device.is_some() && sim.as_deref() != Some("READY")) {
        Some(q.get(
            "SIM PIN (empty if it asks for none)",
            ("pin", &pin_flag),
            "",
            check_pin,
        )?)
        .filter(|p| !p.is_empty())
    } else {
        None
    };
    let listen = q.get(
        "Admin pages and API address",
        ("listen", &args.listen),
        "127.0.0.1:8080",
        check_listen,
    )?;

    let token_file = args
        .config
        .parent()
        .map(|d| d.join("admin.token"))
        .filter(|p| p.is_file());
    let token = match token_file {
        Some(p) => Token::File(p),
        None => Token::Inline(crate::cli::generate_token()?),
    };
    let answers = Answers {
        company,
        country,
        timezone,
        device,
        pin,
        listen,
        state_dir: args.state_dir.clone(),
        token,
    };
    let (text, _) = checked(&answers)?;
    write_config(&args.config, &text, args.force)?;
    println!("config written to {}", args.config.display());
    if answers.device.is_none() {
        println!(
            "no modem in it: add an [[android]] or [[http_sms]] route from the example config, \
             or a [[modem]] found by `pasarela setup detect`"
        );
    }
    println!(
        "next: pasarela check-config {0}; sudo pasarela doctor --config {0}; sudo systemctl restart pasarela",
        args.config.display()
    );
    let test_to = match &args.test_sms {
        Some(n) => Some(n.clone()),
        None if q.interactive && answers.device.is_some() => Some(q.get(
            "Number for a test SMS (empty to skip)",
            ("test-sms", &None),
            "",
            check_any,
        )?)
        .filter(|n| !n.is_empty()),
        None => None,
    };
    if let Some(to) = test_to {
        println!("{}", test_sms(&args.config, &to).await?);
    }
    Ok(())
}

/// The test SMS's text, in the config's language.
fn test_text(loaded: &Loaded) -> String {
    let c = &loaded.config;
    match c.company.language {
        crate::config::Language::En => format!(
            "{}: pasarela test message. If you got it, the gateway sends SMS.",
            c.company.name
        ),
        _ => format!(
            "{}: mensaje de prueba de pasarela. Si lo recibió, la pasarela envía SMS.",
            c.company.name
        ),
    }
}

/// Sends one test SMS: through the running daemon when one answers at the config's address,
/// else straight through the config's modem (when no one holds its port and its SIM needs no
/// PIN: the PIN is the daemon's to type).
pub async fn test_sms(config_path: &Path, to: &str) -> anyhow::Result<String> {
    let loaded = crate::setup::load(config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let phones = loaded.config.company.phone_context();
    let msisdn = phones
        .normalize(to)
        .map_err(|e| anyhow::anyhow!("test SMS number {e}"))?;
    let text = test_text(&loaded);
    if crate::daemon::api_base(&loaded).is_ok() && loaded.admin_token().ok().flatten().is_some() {
        match crate::cli::send(config_path, msisdn.as_str(), &text).await {
            Ok(line) => return Ok(format!("test SMS to {}: {line}", msisdn.masked())),
            Err(e) if !format!("{e:#}").contains("cannot reach pasarela") => return Err(e),
            Err(_) => {}
        }
    }
    let Some(m) = loaded.config.modems.first() else {
        bail!(
            "the config has no modem to send through; start pasarela and use `pasarela send --config {}`",
            config_path.display()
        );
    };
    let start_first = format!(
        "start pasarela (sudo systemctl restart pasarela), then: pasarela send --config {} --to {to} --text …",
        config_path.display()
    );
    if crate::doctor::holders(&m.device)
        .iter()
        .any(|h| h.is_daemon())
    {
        bail!("the daemon holds {}; {start_first}", m.device.display());
    }
    let port = crate::modem::port::open(&m.device, m.baud)
        .with_context(|| format!("cannot open {}", m.device.display()))?;
    let mut at = crate::modem::driver::AtPort::new(port);
    let cmd = |t: &str, prefix: Option<&'static str>| {
        crate::modem::at::Command::new(t, prefix).timeout(Duration::from_secs(5))
    };
    at.command(&cmd("AT", None))
        .await
        .with_context(|| format!("the modem on {} does not answer", m.device.display()))?;
    let _ = at.command(&cmd("ATE0", None)).await;
    let _ = at.command(&cmd("AT+CMEE=1", None)).await;
    let cpin = at.command(&cmd("AT+CPIN?", Some("+CPIN:"))).await?;
    if !cpin.iter().any(|l| l.contains("READY")) {
        bail!(
            "the SIM is not ready ({}); the daemon types the PIN once when it starts: {start_first}",
            cpin.join(" ").trim()
        );
    }
    at.command(&cmd("AT+CMGF=0", None)).await?;
    let opts = crate::sms::SubmitOptions {
        max_parts: 2,
        ..Default::default()
    };
    let parts = crate::sms::encode_submit(msisdn.as_str(), &text, &opts)?;
    let mut reference = 0;
    for part in &parts {
        reference = at
            .submit(
                part.length,
                &part.hex_with_default_smsc(),
                Duration::from_secs(60),
            )
            .await?;
    }
    Ok(format!(
        "test SMS to {} sent through {} (message reference {reference})",
        msisdn.masked(),
        m.device.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers() -> Answers {
        Answers {
            company: "Fibra \"Sur\"".into(),
            country: "AR".into(),
            timezone: "America/Argentina/Cordoba".into(),
            device: Some("/dev/serial/by-id/usb-HUAWEI-if00-port0".into()),
            pin: Some("1234".into()),
            listen: "127.0.0.1:8089".into(),
            state_dir: "/var/lib/pasarela".into(),
            token: Token::Inline("0123456789abcdef0123".into()),
        }
    }

    #[test]
    fn the_written_config_passes_every_check_and_keeps_the_answers() {
        let (text, loaded) = checked(&answers()).unwrap();
        let c = &loaded.config;
        assert_eq!(c.company.name, "Fibra \"Sur\"");
        assert_eq!(c.company.timezone, "America/Argentina/Cordoba");
        assert_eq!(c.modems.len(), 1);
        assert_eq!(c.modems[0].pin.as_ref().unwrap().expose(), "1234");
        assert_eq!(c.admin.listen, "127.0.0.1:8089");
        // A new box never sends reminders or campaigns at night.
        assert_eq!(c.windows.notifications, "fulltime");
        assert_eq!(c.windows.bulk, "extendido");
        assert!(
            text.lines().filter(|l| l.starts_with('#')).count() > 10,
            "commented"
        );

        let mut no_modem = answers();
        no_modem.device = None;
        no_modem.token = Token::File("/etc/pasarela/admin.token".into());
        let (_, loaded) = checked(&no_modem).unwrap();
        assert!(loaded.config.modems.is_empty());
    }

    #[test]
    fn bad_answers_are_refused_by_key() {
        let mut a = answers();
        a.timezone = "Mars/Olympus".into();
        a.listen = "8080".into();
        let err = checked(&a).unwrap_err().to_string();
        assert!(
            err.contains("company.timezone") && err.contains("admin.listen"),
            "{err}"
        );
    }

    #[test]
    fn questions_take_the_default_on_an_empty_line() {
        let mut input: &[u8] = b"\nFibra Norte\n";
        let mut out = Vec::new();
        let mut asker = Asker::new(&mut input, &mut out);
        assert_eq!(asker.ask("Country", "AR").unwrap(), "AR");
        assert_eq!(asker.ask("Company", "Mi ISP").unwrap(), "Fibra Norte");
        assert_eq!(asker.ask("More", "x").unwrap(), "x", "end of input");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Country [AR]: Company [Mi ISP]: More [x]: "
        );
    }

    #[test]
    fn an_existing_file_is_kept_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/pasarela.toml");
        write_config(&path, "a = 1\n", false).unwrap();
        let err = write_config(&path, "b = 2\n", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--force"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a = 1\n");
        write_config(&path, "b = 2\n", true).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }
}
