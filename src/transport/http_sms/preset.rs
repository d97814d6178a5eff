//! Built-in provider presets for `[[http_sms]]`: what an ISP would otherwise copy from the
//! provider's guide (URL, method, parameter names, number format, charset, how the answer
//! reads, the push's parameter names, the balance queries). [`resolve`] fills every key the
//! route leaves unset; a key the route writes wins.
//!
//! ## SMS Masivos (`provider = "smsmasivos"`), Argentina
//! Facts checked on 2026-12-02 with the search tool:
//! - The provider's "Guía API SMS Masivos versión 8" (copy at pdfslide.net, "guia-api-sms-masivos-
//!   version-…"): sending is `GET` or `POST` to `http://servicio.smsmasivos.com.ar/enviar_sms.asp?api=1`
//!   with `USUARIO`, `CLAVE`, `TOS` (mobile without the country code; Argentina: 10 digits, without
//!   the 0 and without the 15) and `TEXTO`; the guide also lists HTTP PULL and PUSH reception, the
//!   balance and package-expiry queries over HTTP, and HTTPS.
//! - cmercado93/smsmasivos-api-client (PHP client written from that guide), `src/Common/
//!   Endpoints.php`, `src/Operations/*.php`, `tests/Operations/SendMessageTest.php`: base
//!   `https://servicio.smsmasivos.com.ar`; with `respuestanumerica=1` the send answers
//!   `<code>;<text>`: `0` sent, `1` test send accepted, negative codes refusals (`-1` landline,
//!   `-2` too many failures, `-3` unsubscribed, `-4` duplicate, `-5` spam, `-6` too long, `-7`/`-8`
//!   bad number length/characters, `-9` bad area code, `-10` carrier refused, `-11` bad
//!   characters in the text, `-12` bad prefix, `-14` do-not-call list, `-99` other); `obtener_saldo.asp`
//!   answers the credit as bare digits; `obtener_vencimiento_paquete.asp` answers `YYYY-MM-DD`;
//!   `obtener_sms_entrada.asp` (PULL) answers tab-separated lines `number, text, date, id`; every
//!   answer is decoded as ISO-8859-1.
//! - An n8n node for SMS Masivos (same endpoints) also decodes every answer as Latin-1 and reads
//!   a plain `OK` as success of a send without `respuestanumerica`.
//!
//! - An Odoo module reading SMS Masivos replies (`_cron_read_response`) polls
//!   `obtener_sms_entrada.asp` with `solonoleidos=1` (unread only) and `marcarcomoleidos=1` (mark
//!   them read), splitting lines on tabs: number, text, date, SMS Masivos id.
//!
//! Not confirmed, so configurable: that the ASP page decodes `TEXTO` as ISO-8859-1 (inferred from
//! its Latin-1 answers; `encoding = "utf-8"` switches), and the PUSH parameter names (the guide's
//! table was not readable; the defaults `origen`, `texto`, `id` follow the contract and
//! can be changed under `[http_sms.inbound]`).

use crate::config::{
    AnswerReading, HttpMethod, HttpSmsAnswer, HttpSmsConfig, HttpSmsInbound, PhoneFormat,
    TextEncoding,
};

/// The names `provider` may take.
pub const PROVIDERS: [&str; 1] = ["smsmasivos"];

const SMSM_BASE: &str = "https://servicio.smsmasivos.com.ar";

/// The route with its preset applied; `Err` for an unknown provider.
pub fn resolve(route: &HttpSmsConfig) -> Result<HttpSmsConfig, String> {
    let mut r = route.clone();
    let Some(provider) = route.provider.as_deref() else {
        return Ok(r);
    };
    match provider {
        "smsmasivos" => {
            if r.url.is_empty() {
                r.url = format!("{SMSM_BASE}/enviar_sms.asp?api=1");
            }
            r.method.get_or_insert(HttpMethod::GET);
            for (k, v) in [
                ("USUARIO", "{username}"),
                ("CLAVE", "{password}"),
                ("TOS", "{phone}"),
                ("TEXTO", "{message}"),
                ("respuestanumerica", "1"),
            ] {
                r.params.entry(k.to_string()).or_insert(v.to_string());
            }
            r.phone_format.get_or_insert(PhoneFormat::National);
            r.encoding.get_or_insert(TextEncoding::Latin1);
            if r.answer.is_none() && r.success_contains.is_none() {
                r.answer = Some(smsmasivos_answer());
            }
            let inbound = r.inbound.get_or_insert_with(HttpSmsInbound::default);
            inbound.from.get_or_insert("origen".to_string());
            inbound.text.get_or_insert("texto".to_string());
            inbound.id.get_or_insert("id".to_string());
            r.balance_url.get_or_insert(format!(
                "{SMSM_BASE}/obtener_saldo.asp?usuario={{username}}&clave={{password}}"
            ));
            r.poll_url.get_or_insert(format!(
                "{SMSM_BASE}/obtener_sms_entrada.asp?usuario={{username}}&clave={{password}}\
                 &solonoleidos=1"
            ));
            r.poll_ack_url.get_or_insert(format!(
                "{SMSM_BASE}/obtener_sms_entrada.asp?usuario={{username}}&clave={{password}}\
                 &solonoleidos=1&marcarcomoleidos=1"
            ));
            r.expiry_url.get_or_insert(format!(
                "{SMSM_BASE}/obtener_vencimiento_paquete.asp?usuario={{username}}&clave={{password}}"
            ));
            Ok(r)
        }
        other => Err(format!(
            "`{other}` is not a known provider: use one of {} or leave provider out and set url \
             and params",
            PROVIDERS.join(", ")
        )),
    }
}

/// How SMS Masivos' send answer reads (see the module doc for the codes).
fn smsmasivos_answer() -> HttpSmsAnswer {
    let codes = |list: &[&str]| list.iter().map(|c| format!("{c};")).collect::<Vec<_>>();
    HttpSmsAnswer {
        ok: [codes(&["0", "1"]), vec!["OK".to_string()]].concat(),
        // The number or the text is at fault: sending it again cannot help.
        permanent: codes(&[
            "-1", "-2", "-3", "-4", "-5", "-6", "-7", "-8", "-9", "-10", "-11", "-12", "-14",
        ]),
        // `-99` (other) and codes not in the list: a refusal, so trying later cannot send twice.
        temporary: vec!["-".to_string()],
        // An ASP error page or an empty page: the API did not take the message.
        html: Some(AnswerReading::Temporary),
        empty: Some(AnswerReading::Temporary),
    }
}

/// What a 2xx answer means for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Sent,
    /// One of the readings the route names (temporary, permanent, unconfirmed).
    Read(AnswerReading),
    /// None of the route's patterns: "sent, unconfirmed", never resent.
    Unrecognised,
}

/// Reads a 2xx answer's body under `answer`.
pub fn read_answer(answer: &HttpSmsAnswer, body: &str) -> Verdict {
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return answer.empty.map_or(Verdict::Unrecognised, Verdict::Read);
    }
    if trimmed.starts_with('<') {
        return answer.html.map_or(Verdict::Unrecognised, Verdict::Read);
    }
    // A bare code (`-1`) reads as `-1;`.
    let keyed = if trimmed.contains(';') {
        trimmed.to_string()
    } else {
        format!("{trimmed};")
    };
    let hit = |list: &[String]| list.iter().any(|p| keyed.starts_with(p.as_str()));
    if hit(&answer.ok) {
        Verdict::Sent
    } else if hit(&answer.permanent) {
        Verdict::Read(AnswerReading::Permanent)
    } else if hit(&answer.temporary) {
        Verdict::Read(AnswerReading::Temporary)
    } else {
        Verdict::Unrecognised
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smsmasivos_answers_read_as_the_guide_says() {
        let a = smsmasivos_answer();
        assert_eq!(read_answer(&a, "0;Mensaje enviado"), Verdict::Sent);
        assert_eq!(read_answer(&a, "1;Simulacro OK"), Verdict::Sent);
        assert_eq!(read_answer(&a, "OK\r\n"), Verdict::Sent);
        assert_eq!(
            read_answer(&a, "-1;Telefono fijo"),
            Verdict::Read(AnswerReading::Permanent)
        );
        assert_eq!(
            read_answer(&a, "-10"),
            Verdict::Read(AnswerReading::Permanent)
        );
        assert_eq!(
            read_answer(&a, "-99;Error"),
            Verdict::Read(AnswerReading::Temporary)
        );
        assert_eq!(
            read_answer(&a, "<html><body>Service Unavailable</body></html>"),
            Verdict::Read(AnswerReading::Temporary)
        );
        assert_eq!(
            read_answer(&a, "  "),
            Verdict::Read(AnswerReading::Temporary)
        );
        assert_eq!(read_answer(&a, "Encolado"), Verdict::Unrecognised);
    }

    #[test]
    fn the_preset_fills_only_what_is_unset() {
        let route: HttpSmsConfig = toml::from_str(
            "name = \"smsm\"\nprovider = \"smsmasivos\"\nusername = \"u\"\npassword = \"p\"\n\
             url = \"http://127.0.0.1:9/enviar_sms.asp?api=1\"\n[params]\nTEXTO = \"{message}\"\n",
        )
        .unwrap();
        let r = resolve(&route).unwrap();
        assert_eq!(r.url, "http://127.0.0.1:9/enviar_sms.asp?api=1");
        assert_eq!(r.params["TOS"], "{phone}");
        assert_eq!(r.phone_format, Some(PhoneFormat::National));
        assert_eq!(r.encoding, Some(TextEncoding::Latin1));
        assert_eq!(r.inbound.unwrap().from.as_deref(), Some("origen"));
        let mut other = route.clone();
        other.provider = Some("connectus".into());
        assert!(resolve(&other).unwrap_err().contains("`connectus`"));
    }
}
