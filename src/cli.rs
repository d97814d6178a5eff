//! Helpers behind the `pasarela` subcommands that are more than a call into another module.

use std::path::Path;

use anyhow::{Context, bail};

use crate::config::{Loaded, Secret};

/// A fresh random token: 32 hex characters from the OS random source.
pub fn generate_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A one-line summary of a valid config, for `check-config`.
pub fn summary(loaded: &Loaded) -> String {
    let c = &loaded.config;
    let token = if c.admin.token.is_some() {
        "token set"
    } else if c.admin.token_file.is_some() {
        "token file"
    } else {
        "NO TOKEN (API off)"
    };
    format!(
        "config OK: company \"{}\", admin API on {} ({token}), state in {}",
        c.company.name,
        c.admin.listen,
        c.daemon.state_dir.display()
    )
}

/// The running daemon's API as the config describes it: one place for its address, the token,
/// the HTTP client and the "is it running?" error of every command that talks to it.
struct DaemonApi {
    base: String,
    token: Secret,
    client: reqwest::Client,
}

impl DaemonApi {
    fn from_config(config_path: &Path, timeout_secs: u64) -> anyhow::Result<DaemonApi> {
        let loaded = crate::setup::load(config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
        let token = loaded
            .admin_token()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .context("the config sets no admin token (admin.token or admin.token_file)")?;
        Ok(DaemonApi {
            base: crate::daemon::api_base(&loaded)?,
            token,
            // Trusts exactly the admin listener's own certificate when it serves https.
            client: crate::net::http::admin_client(
                loaded.config.admin.tls_cert.as_deref(),
                std::time::Duration::from_secs(timeout_secs),
            )
            .map_err(anyhow::Error::msg)?,
        })
    }

    /// A `POST` to `path` (under the base address) with the token.
    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(self.token.expose())
    }

    /// Sends `request`; the status and the JSON body (`null` when it is not JSON).
    async fn call(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<(reqwest::StatusCode, serde_json::Value)> {
        let response = request.send().await.with_context(|| {
            format!(
                "cannot reach pasarela at {}; is it running? (systemctl status pasarela)",
                self.base
            )
        })?;
        let status = response.status();
        Ok((status, response.json().await.unwrap_or_default()))
    }
}

/// `pasarela send`: queues one SMS through the running daemon's API.
pub async fn send(config_path: &Path, to: &str, text: &str) -> anyhow::Result<String> {
    let api = DaemonApi::from_config(config_path, 30)?;
    let (status, body) = api
        .call(
            api.post("/api/messages")
                .json(&serde_json::json!({"to": to, "text": text})),
        )
        .await?;
    if status.is_success() {
        Ok(format!(
            "queued as message {} ({})",
            body["id"],
            body["state"].as_str().unwrap_or("?")
        ))
    } else {
        let msg = body["error"]["message"]
            .as_str()
            .unwrap_or("no error message")
            .to_string();
        bail!("pasarela refused the message ({status}): {msg}")
    }
}

/// `pasarela ussd`: a USSD session on a configured modem. While the daemon runs (its API
/// answers) the daemon runs it, since it owns the port; otherwise the port is opened here.
/// Returns the printed answer and the notes for standard error.
pub async fn ussd(
    config_path: &Path,
    modem: Option<&str>,
    code: &str,
    replies: &[String],
) -> anyhow::Result<(String, Vec<String>)> {
    use crate::modem::ussd::{self, UssdAnswer};
    ussd::check_request(code, true).map_err(|why| anyhow::anyhow!("CODE: {why}"))?;
    for r in replies {
        ussd::check_request(r, false).map_err(|why| anyhow::anyhow!("REPLY: {why}"))?;
    }
    let loaded = crate::setup::load(config_path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", config_path.display()))?;
    let modems = &loaded.config.modems;
    let names = || {
        modems
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let m = match modem {
        Some(name) => modems.iter().find(|m| m.name == name).with_context(|| {
            format!(
                "--modem {name}: no [[modem]] of that name (there are: {})",
                names()
            )
        })?,
        None => match modems.as_slice() {
            [] => bail!("the config has no [[modem]]"),
            [only] => only,
            _ => bail!(
                "several modems are configured ({}): pick one with --modem",
                names()
            ),
        },
    };
    let requests = 1 + replies.len();
    if loaded.admin_token().ok().flatten().is_some() {
        let api = DaemonApi::from_config(
            config_path,
            (m.ussd_timeout_secs + 15) * requests as u64 + 15,
        )?;
        let request = api
            .post(&format!("/api/modems/{}/ussd", m.name))
            .json(&serde_json::json!({"code": code, "replies": replies}));
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                if !status.is_success() {
                    let msg = body["error"]["message"]
                        .as_str()
                        .unwrap_or("no error message");
                    bail!("{}: {msg}", m.name);
                }
                let answer: UssdAnswer = serde_json::from_value(body)
                    .context("the daemon's answer is not a USSD answer")?;
                return Ok(ussd::render(&answer, requests));
            }
            // Nobody listens: the daemon is not running, the port is free to open here.
            Err(e) if e.is_connect() => {}
            Err(e) => bail!("cannot ask pasarela at {}: {e}", api.base),
        }
    }
    let answer = ussd_on_port(m, code, replies).await?;
    Ok(ussd::render(&answer, requests))
}

/// Opens the modem's port and runs the session there (the daemon is not running).
async fn ussd_on_port(
    m: &crate::config::ModemConfig,
    code: &str,
    replies: &[String],
) -> anyhow::Result<crate::modem::ussd::UssdAnswer> {
    use crate::modem::at::Command;
    use crate::modem::driver::AtPort;
    use std::time::Duration;
    let port = crate::modem::port::open(&m.device, m.baud)
        .with_context(|| format!("{}: cannot open {}", m.name, m.device.display()))?;
    let mut at = AtPort::new(port);
    // ESC leaves a half-typed command; then the modem must answer AT.
    at.write_raw(&[0x1b]).await?;
    let mut alive = false;
    for _ in 0..3 {
        at.discard_input();
        if at
            .command(&Command::new("AT", None).timeout(Duration::from_secs(1)))
            .await
            .is_ok()
        {
            alive = true;
            break;
        }
    }
    if !alive {
        bail!(
            "{}: the modem does not answer AT on {}",
            m.name,
            m.device.display()
        );
    }
    let _ = at.command(&Command::new("ATE0", None)).await;
    let _ = at.command(&Command::new("AT+CMEE=1", None)).await;
    let mut held = Vec::new();
    crate::modem::ussd::exchange(
        &mut at,
        code,
        replies,
        std::time::Duration::from_secs(m.ussd_timeout_secs),
        &mut held,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{}: {e}", m.name))
}

/// Sample customers of the `demo` ISP (the first one texts in the README's examples).
pub const DEMO_CUSTOMERS: &str = "codigo,nombre,telefono,email,deuda,vencimiento,plan\n\
1001,Ana Pérez,1123456789,ana@example.com,\"1.234,50\",05/12/2026,Fibra 300\n\
1002,Bruno Díaz,011 15-2345-6780,,0,05/12/2026,Fibra 100\n\
1003,Carla Núñez,+54 9 351 555-0101,carla@example.com,\"15.800,00\",10/12/2026,Radio 20\n\
1004,Comedor Los Álamos,2614445566,,\"3.210,75\",10/12/2026,Fibra 50\n";

/// Puts the sample customers in an empty directory (`demo`); leaves a used one alone.
pub async fn seed_demo_customers(
    store: &crate::store::Store,
    phones: &crate::phone::PhoneContext,
) -> anyhow::Result<usize> {
    let count = store.read(crate::store::directory::count_customers).await?;
    if count > 0 {
        return Ok(0);
    }
    let report = crate::directory::import_csv(
        store,
        DEMO_CUSTOMERS.as_bytes().to_vec(),
        Default::default(),
        phones.clone(),
    )
    .await?;
    anyhow::ensure!(
        report.rejected.is_empty(),
        "demo customers rejected: {:?}",
        report.rejected
    );
    Ok(report.inserted)
}

/// `pasarela customers import FILE.csv`: sends the file to the running daemon's import route.
pub async fn import_customers(config_path: &Path, file: &Path) -> anyhow::Result<String> {
    let api = DaemonApi::from_config(config_path, 300)?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let (status, body) = api
        .call(
            api.post("/api/customers/import")
                .header("content-type", "text/csv")
                .body(bytes),
        )
        .await?;
    if let Some(msg) = body["error"]["message"].as_str() {
        bail!("pasarela refused the file ({status}): {msg}");
    }
    let mut out = format!(
        "{}: {} inserted, {} updated, {} rejected",
        file.display(),
        body["inserted"],
        body["updated"],
        body["rejected"].as_array().map_or(0, Vec::len)
    );
    for r in body["rejected"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n  line {}: {}{}",
            r["line"],
            r["field"]
                .as_str()
                .map(|f| format!("{f}: "))
                .unwrap_or_default(),
            r["error"].as_str().unwrap_or("")
        ));
    }
    for s in body["shared_phones"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n  note: {} is on customers {} and {}",
            s["phone"].as_str().unwrap_or(""),
            s["code"].as_str().unwrap_or(""),
            s["also_on"].as_str().unwrap_or("")
        ));
    }
    for w in body["warnings"].as_array().into_iter().flatten() {
        out.push_str(&format!("\n  warning: {}", w.as_str().unwrap_or("")));
    }
    if status.is_success() {
        Ok(out)
    } else {
        bail!("{out}")
    }
}

fn state_dir(config_path: &Path) -> anyhow::Result<std::path::PathBuf> {
    let loaded = crate::setup::load(config_path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", config_path.display()))?;
    Ok(loaded.config.daemon.state_dir)
}

/// `pasarela backup PATH`: a consistent copy of the database (safe while the daemon runs).
pub fn backup(config_path: &Path, dest: &Path) -> anyhow::Result<String> {
    let dir = state_dir(config_path)?;
    let db = dir.join(crate::store::DB_FILE);
    if !db.is_file() {
        bail!("there is no database at {}", db.display());
    }
    // Shared, like the daemon's: a restore cannot start while the copy is made.
    let _lock = crate::store::backup::lock_state_dir(&dir, false)?;
    let size = crate::store::backup::backup_to(&db, dest)?;
    Ok(format!(
        "backup written to {} ({:.1} MB)",
        dest.display(),
        size as f64 / 1e6
    ))
}

/// `pasarela restore PATH`: puts a backup in place of the database; refuses while the daemon
/// (or anything else) has the database open.
pub fn restore(config_path: &Path, source: &Path) -> anyhow::Result<String> {
    let dir = state_dir(config_path)?;
    let done = crate::store::backup::restore_from(&dir, source)?;
    Ok(match done.previous {
        Some(p) => format!(
            "restored {} into {}; the previous database is kept as {}",
            source.display(),
            dir.display(),
            p.display()
        ),
        None => format!("restored {} into {}", source.display(), dir.display()),
    })
}

/// `pasarela holidays [YEAR] [--country CODE] [--config PATH]`: the holidays the delivery
/// windows honour in `year`, one line each. The config (the given one, else the default one
/// when it can be read) brings its added and removed days and its calendar; `country` picks
/// another national table.
pub fn holidays(
    config_path: Option<&Path>,
    country: Option<&str>,
    year: Option<i32>,
) -> anyhow::Result<String> {
    use chrono::Datelike;
    let loaded = match config_path {
        Some(p) => crate::setup::load(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        None => {
            let default = Path::new(crate::config::DEFAULT_CONFIG_PATH);
            match std::fs::read_to_string(default) {
                Ok(_) => crate::setup::load(default)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", default.display()))?,
                Err(e) => {
                    if default.exists() {
                        eprintln!(
                            "note: {} not read ({e}); its added and removed days are not shown",
                            default.display()
                        );
                    }
                    Loaded::from_config(crate::config::Config::default())
                }
            }
        }
    };
    let c = &loaded.config;
    let tz: chrono_tz::Tz = c.company.timezone.parse().unwrap_or(chrono_tz::UTC);
    let windows = crate::rules::window::Windows::new(&c.windows, tz, &c.company.country).map_err(
        |errors| {
            anyhow::anyhow!(
                "{}",
                errors
                    .iter()
                    .map(|(k, m)| format!("{k}: {m}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        },
    )?;
    let mut calendar = windows.calendar().clone();
    if let Some(code) = country {
        calendar.table = Some(crate::holidays::table(code).ok_or_else(|| {
            anyhow::anyhow!(
                "--country {code}: no holiday table for it; known: {} (add its days with windows.holidays)",
                crate::holidays::known_codes()
            )
        })?);
    }
    let year = year.unwrap_or_else(|| chrono::Utc::now().with_timezone(&tz).year());
    if !(1583..=9999).contains(&year) {
        bail!("YEAR {year}: give a year of the Gregorian calendar, like 2027");
    }
    let title = match calendar.table {
        Some(t) => format!("{} {year}, national calendar", t.country),
        None => format!(
            "{year}, no national calendar (windows.calendar = \"none\" or no table for {})",
            c.company.country
        ),
    };
    let mut out = format!("Holidays the delivery windows honour: {title}");
    if !calendar.added.is_empty() || !calendar.removed.is_empty() {
        out.push_str(", with the config's windows.holidays and windows.not_holidays");
    }
    for h in calendar.year(year) {
        let note = match h.source {
            crate::holidays::Source::Moved(from) if from != h.date => format!(
                " (from {}, moved by {})",
                from.format("%a %d %b"),
                calendar.table.map_or("law", |t| t.rule.law())
            ),
            _ => String::new(),
        };
        out.push_str(&format!(
            "\n{}  {}  {}{note}",
            h.date.format("%Y-%m-%d"),
            h.date.format("%a"),
            h.name
        ));
    }
    for d in calendar.removed.iter().filter(|d| d.year() == year) {
        out.push_str(&format!(
            "\n(not a holiday here: {} taken out by windows.not_holidays)",
            d.format("%Y-%m-%d")
        ));
    }
    Ok(out)
}

/// The config `pasarela demo` writes to `DIR/pasarela.toml` and runs with: a local database,
/// the simulated modem, an on-call group for ticket alerts and two send-page templates.
pub fn demo_config(dir: &Path, listen: &str, token: &str, modem: &Path) -> String {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    format!(
        "# Written by `pasarela demo` at each start (edits are lost): the config it runs with.\n\
         # Other commands reach the demo through it: pasarela send --config {path} --to … --text …\n\n\
         [company]\n\
         name = \"Demo ISP\"\n\n\
         [admin]\n\
         listen = {listen}\n\
         token = {token}\n\n\
         [daemon]\n\
         state_dir = {dir}\n\n\
         # New tickets alert an on-call technician (a number of the simulated network).\n\
         [rules.ticket]\n\
         alert_groups = [\"guardia\"]\n\n\
         # Texts the send page offers in its template picker.\n\
         [rules.templates]\n\
         corte = {corte}\n\
         recordatorio = {recordatorio}\n\n\
         [[groups]]\n\
         name = \"guardia\"\n\
         phones = [\"+5491156781234\"]\n\
         window = \"always\"\n\n\
         # The simulated modem (its control API is printed at start).\n\
         [[modem]]\n\
         name = \"modem1\"\n\
         device = {modem}\n",
        path = dir.join("pasarela.toml").display(),
        listen = q(listen),
        token = q(token),
        dir = q(&dir.to_string_lossy()),
        corte = q(
            "Estimado %nombre%: mañana de 2 a 4 h habrá un corte programado por mantenimiento. %empresa%"
        ),
        recordatorio = q(
            "Hola %nombre%, le recordamos que su saldo es %deuda%, con vencimiento el %vencimiento%. %empresa%"
        ),
        modem = q(&modem.to_string_lossy()),
    )
}
