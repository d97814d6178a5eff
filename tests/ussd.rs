//! USSD and the prepaid SIM's credit, end to end: the real `pasarela` binary against
//! `pasarela modem-sim` on a real pseudo-terminal. `pasarela ussd` on the port itself and
//! through the running daemon (menus, UCS-2 and Huawei-style hex answers, a timeout,
//! `+CUSD: 2`, `+CUSD: 4`, `+CME ERROR`), SMS traffic while a session waits, the credit check
//! in status, metrics and doctor, one alert per crossing, a pattern mismatch reported once,
//! and config errors that name the key.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pasarela::modem::sim::{self, ConfigPatch, SimHandle, SimOptions, UssdNode};
use serde_json::{Value, json};

use common::{Daemon, TOKEN, wait_until};

/// The on-duty group the credit alerts go to.
const ON_DUTY: &str = "+5491156781234";

struct Bench {
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    sim: Option<SimHandle>,
    link: PathBuf,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        // Multi-threaded, so the simulator keeps answering while the test waits for the binary.
        let rt = tokio::runtime::Runtime::new().unwrap();
        let link = dir.path().join("modem");
        let sim = rt.block_on(sim::start(SimOptions::new(&link))).unwrap();
        Bench {
            dir,
            rt,
            sim: Some(sim),
            link,
        }
    }

    fn sim(&self) -> &SimHandle {
        self.sim.as_ref().unwrap()
    }

    /// The `[admin]` token, an on-duty group for alerts, and one `[[modem]]` on the simulator.
    fn admin_and_modem(&self, modem_extra: &str) -> String {
        format!(
            "token = \"{TOKEN}\"\n\n[rules.ticket]\nalert_groups = [\"guardia\"]\n\n\
             [[groups]]\nname = \"guardia\"\nphones = [\"{ON_DUTY}\"]\nwindow = \"always\"\n\n\
             [[modem]]\nname = \"modem1\"\ndevice = \"{}\"\nussd_timeout_secs = 2\n{modem_extra}\n",
            self.link.display()
        )
    }

    /// A config whose admin API nobody serves (the daemon is not running).
    fn config(&self, modem_extra: &str) -> PathBuf {
        common::write_config(
            self.dir.path(),
            common::free_port(),
            "",
            &self.admin_and_modem(modem_extra),
        )
    }

    fn daemon(&self, modem_extra: &str) -> Daemon {
        let d = Daemon::start_with(self.dir.path(), &self.admin_and_modem(modem_extra), &[]);
        wait_until("the modem up", Duration::from_secs(30), || {
            self.status(&d)["up"] == true
        });
        d
    }

    /// The modem's entry of `GET /api/status`.
    fn status(&self, d: &Daemon) -> Value {
        let (_, status) = self.call(d, reqwest::Method::GET, "/api/status", None);
        status["transports"][0].clone()
    }

    fn call(
        &self,
        d: &Daemon,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.rt
            .block_on(common::api(method, format!("{}{path}", d.base), body))
    }

    fn set_ussd(&self, code: &str, node: UssdNode) {
        let mut table: BTreeMap<String, UssdNode> = self.sim().config().ussd;
        table.insert(code.to_string(), node);
        self.sim()
            .set_config(ConfigPatch {
                ussd: Some(table),
                ..Default::default()
            })
            .unwrap();
    }

    fn set_balance_text(&self, text: &str) {
        self.set_ussd("*444#", node(text));
    }

    /// `pasarela ussd --config CONFIG ARGS…`: exit code, stdout, stderr.
    fn ussd(&self, config: &Path, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(common::bin())
            .arg("ussd")
            .arg("--config")
            .arg(config)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn doctor(&self, config: &Path) -> String {
        let user = Command::new("id").arg("-un").output().unwrap();
        let out = Command::new(common::bin())
            .arg("doctor")
            .arg("--config")
            .arg(config)
            .arg("--user")
            .arg(String::from_utf8(user.stdout).unwrap().trim())
            .env(
                pasarela::logging::JOURNAL_SOCKET_ENV,
                self.dir.path().join("no-journal"),
            )
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Texts the simulated network received for the on-duty phone.
    fn alerts(&self) -> Vec<String> {
        self.sim()
            .sent()
            .into_iter()
            .filter(|m| m.to == ON_DUTY)
            .map(|m| m.text)
            .collect()
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(sim) = self.sim.take() {
            self.rt.block_on(sim.shutdown());
        }
    }
}

fn node(text: &str) -> UssdNode {
    serde_json::from_value(json!({ "text": text })).unwrap()
}

/// The report has a line with this status (`ok`, `WARN`, `FAIL`) that contains `needle`.
#[track_caller]
fn has(report: &str, status: &str, needle: &str) {
    let prefix = format!("{status:<4} ");
    assert!(
        report
            .lines()
            .any(|l| l.starts_with(&prefix) && l.contains(needle)),
        "no `{status}` line with `{needle}` in:\n{report}"
    );
}

const BALANCE: &str = "Su saldo es $ 1.234,50. Vence el 31/12/2026.";

#[test]
fn ussd_on_the_port_when_the_daemon_is_not_running() {
    let bench = Bench::new();
    let config = bench.config("");
    let (code, out, err) = bench.ussd(&config, &["*444#"]);
    assert_eq!(
        (code, out.as_str()),
        (0, format!("{BALANCE}\n").as_str()),
        "{err}"
    );

    // A two-step menu answered in the same session.
    let (code, out, err) = bench.ussd(&config, &["*150#", "2", "1"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "> *150#\nPersonal\n1 Consultar saldo\n2 Comprar pack\n\n\
         > 2\nPacks:\n1 1 GB $ 500\n2 3 GB $ 1.200\n\n\
         > 1\nPack 1 GB activado. Saldo: $ 734,50\n"
    );
    // A menu left waiting: shown, and the user told how to answer it.
    let (code, out, err) = bench.ussd(&config, &["*150#"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "Personal\n1 Consultar saldo\n2 Comprar pack\n");
    assert!(
        err.contains("note: a menu: to choose, run again with the option after the code, e.g. pasarela ussd '*150#' 1"),
        "{err}"
    );

    // UCS-2 (<dcs> 72, hex) and Huawei-style packed GSM 7-bit hex answers.
    let (code, out, _) = bench.ussd(&config, &["*555#"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "Tu crédito: $ 1.234,50 — ¡recargá ya!\n")
    );
    bench
        .sim()
        .set_config(ConfigPatch {
            ussd_hex: Some(true),
            ..Default::default()
        })
        .unwrap();
    let (code, out, _) = bench.ussd(&config, &["*444#"]);
    assert_eq!((code, out.as_str()), (0, format!("{BALANCE}\n").as_str()));
    let (code, out, _) = bench.ussd(&config, &["*150#", "2"]);
    assert_eq!(code, 0);
    assert!(
        out.ends_with("> 2\nPacks:\n1 1 GB $ 500\n2 3 GB $ 1.200\n"),
        "{out}"
    );

    // The network ends the session, does not support the code, never answers, or refuses.
    let (code, _, err) = bench.ussd(&config, &["*999#"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("modem1: the network ended the USSD session (+CUSD: 2)"),
        "{err}"
    );
    let (code, _, err) = bench.ussd(&config, &["*123#"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("does not support this USSD request (+CUSD: 4)"),
        "{err}"
    );
    let (code, _, err) = bench.ussd(&config, &["*777#"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no USSD answer from the network within 2 s"),
        "{err}"
    );
    let mut refused = node("");
    refused.result = sim::UssdResult::Error;
    bench.set_ussd("*888#", refused);
    let (code, _, err) = bench.ussd(&config, &["*888#"]);
    assert_eq!(code, 1);
    assert!(err.contains("+CME ERROR: 100"), "{err}");
    // Bad input changes nothing and says why.
    let (code, _, err) = bench.ussd(&config, &["444"]);
    assert_eq!(code, 1);
    assert!(err.contains("CODE: `444` is not a USSD code"), "{err}");
    // After all that the modem still answers.
    let (code, out, _) = bench.ussd(&config, &["*444#"]);
    assert_eq!((code, out.as_str()), (0, format!("{BALANCE}\n").as_str()));

    // Doctor asks the credit itself when nothing holds the port.
    let config = bench.config("balance_ussd = \"*444#\"\nbalance_alert_below = 500");
    let report = bench.doctor(&config);
    has(
        &report,
        "ok",
        "modem1: SIM credit $ 1.234,50 (asked just now)",
    );
}

#[test]
fn ussd_through_the_running_daemon_between_sms_traffic() {
    let bench = Bench::new();
    let d = bench.daemon("");
    let (code, out, err) = bench.ussd(&d.config, &["*150#", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("> 1\nSaldo: $ 1.234,50\n"), "{out}");
    let (code, _, err) = bench.ussd(&d.config, &["*999#"]);
    assert_eq!(code, 1);
    assert!(err.contains("(+CUSD: 2)"), "{err}");

    // The admin route.
    let post = |path: &str, body: Value| bench.call(&d, reqwest::Method::POST, path, Some(body));
    let (status, body) = post("/api/modems/modem1/ussd", json!({"code": "*444#"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["text"], BALANCE);
    assert_eq!(body["status"], "done");
    assert_eq!(body["steps"][0]["sent"], "*444#");
    assert_eq!(body["steps"][0]["dcs"], 15);
    let (status, body) = post(
        "/api/modems/modem1/ussd",
        json!({"code": "*150#", "replies": ["2"]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "menu");
    assert_eq!(body["steps"].as_array().unwrap().len(), 2);
    let (status, body) = post("/api/modems/modem9/ussd", json!({"code": "*444#"}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body) = post("/api/modems/modem1/ussd", json!({"code": "444"}));
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("code"))
    );
    let (status, body) = post(
        "/api/modems/modem1/ussd",
        json!({"code": "*150#", "replies": ["a\"b"]}),
    );
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("replies[0]"))
    );
    let (status, body) = post("/api/modems/modem1/ussd", json!({"code": "*999#"}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("ussd_ended"))
    );
    let unauthorized = bench.rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/api/modems/modem1/ussd", d.base))
            .json(&json!({"code": "*444#"}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(unauthorized, 401);

    // A session the network never answers while an SMS arrives and one is queued: both go
    // through once the wait is over, and the modem stays up.
    let config = d.config.clone();
    let waiting = std::thread::spawn(move || {
        Command::new(common::bin())
            .args(["ussd", "--config"])
            .arg(&config)
            .arg("*777#")
            .output()
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(300));
    bench
        .sim()
        .inbound("+5491123456789", "hola, sin internet")
        .unwrap();
    let (status, queued) = bench.call(
        &d,
        reqwest::Method::POST,
        "/api/messages",
        Some(json!({"to": "1123456789", "text": "Técnico en camino"})),
    );
    assert!(status < 300, "{queued}");
    let out = waiting.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no USSD answer from the network within 2 s")
    );
    wait_until("the SMS sent", Duration::from_secs(30), || {
        bench
            .sim()
            .sent()
            .iter()
            .any(|m| m.text == "Técnico en camino")
    });
    wait_until("the SMS received", Duration::from_secs(30), || {
        let (_, page) = bench.call(&d, reqwest::Method::GET, "/api/messages?limit=50", None);
        page["messages"]
            .as_array()
            .is_some_and(|ms| ms.iter().any(|m| m["text"] == "hola, sin internet"))
    });
    assert_eq!(bench.status(&d)["up"], true);
}

#[test]
fn credit_in_status_metrics_doctor_and_one_alert_per_crossing() {
    let bench = Bench::new();
    let extra = "balance_ussd = \"*444#\"\nbalance_pattern = 'saldo es (\\$ ?[\\d.,]+)'\n\
                 balance_interval_hours = 0.0005\nbalance_alert_below = 2000";
    let d = bench.daemon(extra);
    wait_until("the credit in the status", Duration::from_secs(30), || {
        bench.status(&d)["details"]["balance"]["amount"] == "1234.50"
    });
    let balance = bench.status(&d)["details"]["balance"].clone();
    assert_eq!(balance["cents"], 123_450);
    assert_eq!(balance["shown"], "$ 1.234,50");
    assert_eq!(balance["alert_below"], "2000.00");
    assert_eq!(balance["answer"], BALANCE);
    assert!(balance["error"].is_null());
    let (_, metrics) = bench.call(&d, reqwest::Method::GET, "/metrics", None);
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains("pasarela_sim_credit{route=\"modem1\"} 1234.5"),
        "{metrics}"
    );
    has(
        &bench.doctor(&d.config),
        "WARN",
        "modem1: SIM credit $ 1.234,50 (read ",
    );

    // Below 2000: one alert to the on-duty phone, in Spanish…
    wait_until("the low-credit alert", Duration::from_secs(40), || {
        !bench.alerts().is_empty()
    });
    let alerts = bench.alerts();
    assert_eq!(
        alerts[0],
        "pasarela: la SIM del módem modem1 tiene $ 1.234,50 de saldo (aviso por debajo de \
         $ 2.000,00). Cárguele crédito para que los SMS no dejen de salir."
    );
    // …and no other while it stays low (several checks and a look of the alert task, which
    // looks every 20 s, later).
    std::thread::sleep(Duration::from_secs(22));
    assert_eq!(bench.alerts().len(), 1, "{:?}", bench.alerts());

    // Topped up: no alert; falls again: a new crossing, a new alert.
    bench.set_balance_text("Su saldo es $ 5.000,00.");
    wait_until("the credit topped up", Duration::from_secs(30), || {
        bench.status(&d)["details"]["balance"]["amount"] == "5000.00"
    });
    // The alert task has seen it (it looks every 20 s): only now can a fall be a new crossing.
    wait_until("the alert re-armed", Duration::from_secs(60), || {
        d.stderr_text()
            .contains("modem1: the provider's credit is back above the alert threshold")
    });
    assert_eq!(bench.alerts().len(), 1);
    bench.set_balance_text("Su saldo es $45,50");
    wait_until("the second alert", Duration::from_secs(40), || {
        bench.alerts().len() == 2
    });
    assert!(
        bench.alerts()[1].contains("tiene $ 45,50 de saldo"),
        "{:?}",
        bench.alerts()
    );
}

#[test]
fn a_pattern_that_does_not_match_is_reported_once_with_the_answer() {
    let bench = Bench::new();
    let extra = "balance_ussd = \"*444#\"\nbalance_pattern = 'Credito: (\\d+)'\n\
                 balance_interval_hours = 0.0005";
    let mut d = bench.daemon(extra);
    wait_until(
        "the mismatch in the status",
        Duration::from_secs(30),
        || {
            bench.status(&d)["details"]["balance"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("does not match"))
        },
    );
    let balance = bench.status(&d)["details"]["balance"].clone();
    assert_eq!(balance["answer"], BALANCE);
    assert!(balance["amount"].is_null());
    // Several checks later (one every 1.8 s) the log still holds one report, with the answer.
    std::thread::sleep(Duration::from_secs(7));
    let log = d.stderr_with("does not match balance_pattern");
    let reports: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("does not match balance_pattern"))
        .collect();
    assert_eq!(reports.len(), 1, "{log}");
    assert!(reports[0].contains(BALANCE), "{}", reports[0]);
    let report = bench.doctor(&d.config);
    has(
        &report,
        "WARN",
        &format!(
            "modem1: cannot read the SIM credit: balance_pattern `Credito: (\\d+)` does not match the answer; the network answered: {BALANCE}"
        ),
    );
    // Not again after a restart while the answer stays the same.
    d.signal("TERM");
    d.wait_exit(Duration::from_secs(20));
    drop(d);
    let d = bench.daemon(extra);
    // The new daemon read the balance again (its status says why it cannot use it)…
    wait_until("the balance read again", Duration::from_secs(30), || {
        bench.status(&d)["details"]["balance"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("does not match"))
    });
    // …and did not log it again (the log line would come before the status; a moment for the
    // test's reader thread).
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !d.stderr_text().contains("does not match balance_pattern"),
        "{}",
        d.stderr_text()
    );
}

#[test]
fn balance_config_errors_name_the_key() {
    let base = "[[modem]]\nname = \"modem1\"\ndevice = \"/dev/ttyUSB0\"\n";
    for (extra, key, why) in [
        (
            "balance_ussd = \"*444#\"\nbalance_pattern = '(\\$) ([\\d.,]+)'",
            "modem.balance_pattern",
            "has 2 capture groups; it needs exactly one",
        ),
        (
            "balance_ussd = \"*444#\"\nbalance_pattern = 'saldo [\\d'",
            "modem.balance_pattern",
            "is not a valid regex",
        ),
        (
            "balance_ussd = \"*444#\"\nbalance_pattern = 'saldo \\d+'",
            "modem.balance_pattern",
            "has 0 capture groups",
        ),
        (
            "balance_pattern = '(\\d+)'",
            "modem.balance_pattern",
            "needs balance_ussd",
        ),
        (
            "balance_ussd = \"444\"",
            "modem.balance_ussd",
            "is not a USSD code",
        ),
        (
            "balance_ussd = \"*444#\"\nbalance_interval_hours = 0",
            "modem.balance_interval_hours",
            "is not a number of hours",
        ),
        (
            "balance_ussd = \"*444#\"\nbalance_alert_below = -5",
            "modem.balance_alert_below",
            "is not an amount of pesos",
        ),
        (
            "ussd_timeout_secs = 0",
            "modem.ussd_timeout_secs",
            "between 1 and 300",
        ),
    ] {
        let err = match pasarela::setup::from_toml(&format!("{base}{extra}\n")) {
            Ok(_) => panic!("accepted: {extra}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(key) && err.contains(why), "{extra}: {err}");
    }
    // The default pattern, and a good one, pass.
    for extra in [
        "balance_ussd = \"*444#\"",
        "balance_ussd = \"*444#\"\nbalance_pattern = 'Saldo: (?:ARS|\\$) ?([\\d.,]+)'\nbalance_alert_below = 500.5",
    ] {
        pasarela::setup::from_toml(&format!("{base}{extra}\n"))
            .unwrap_or_else(|e| panic!("{extra}: {e}"));
    }
}
