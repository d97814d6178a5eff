//! Error texts of outbound HTTP that are safe to log and to show in API answers: a peer is
//! named by scheme, host and port only (never its path, query or credentials), TLS failures
//! say why the certificate was refused, and long digit runs (phone numbers) are masked.
//!
//! Every HTTP error that reaches a log line, a message's `last_error` or a ticket's
//! `forward_error` goes through [`describe`] or [`sanitize`].

use std::error::Error as StdError;

/// `scheme://host:port` of a URL (the port always shown), or `an invalid address` when it
/// does not parse. Userinfo, path and query are dropped.
pub fn peer_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            // IPv6 hosts come bracketed.
            let Some(host) = u.host_str() else {
                return format!("{}://?", u.scheme());
            };
            match u.port_or_known_default() {
                Some(port) => format!("{}://{host}:{port}", u.scheme()),
                None => format!("{}://{host}", u.scheme()),
            }
        }
        Err(_) => "an invalid address".to_string(),
    }
}

/// Why a request to `url` got no usable answer, for operators: what failed, at which peer
/// (`peer_of`), and for TLS the reason the certificate or handshake was refused. Never holds
/// the URL's path or query, and masks phone numbers.
pub fn describe(url: &str, e: &reqwest::Error) -> String {
    let peer = peer_of(url);
    if let Some(tls) = tls_reason(e) {
        return format!("{tls} at {peer}");
    }
    let what = if e.is_timeout() {
        "no answer in time".to_string()
    } else if e.is_connect() {
        match root_cause(e) {
            Some(cause) => format!("cannot connect ({})", sanitize(&cause)),
            None => "cannot connect".to_string(),
        }
    } else if e.is_body() || e.is_decode() {
        "the answer broke off".to_string()
    } else if e.is_redirect() {
        "too many redirects".to_string()
    } else {
        match root_cause(e) {
            Some(cause) => format!("the request failed ({})", sanitize(&cause)),
            None => "the request failed".to_string(),
        }
    };
    format!("{what} at {peer}")
}

/// Whether `e` is a TLS failure (certificate refused, handshake failed). The request never
/// reached the peer's application, so retrying can never cause a duplicate.
pub fn is_tls(e: &reqwest::Error) -> bool {
    tls_reason(e).is_some()
}

/// The TLS reason of `e`, if it is one: `certificate not trusted (unknown issuer)`,
/// `certificate expired`, `certificate is for another host name`, …
pub fn tls_reason(e: &(dyn StdError + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(rustls_reason(r));
        }
        // io::Error::source() skips the error it wraps: look inside (possibly nested) io errors.
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            let inner: &(dyn StdError + 'static) = inner;
            if let Some(r) = tls_reason(inner) {
                return Some(r);
            }
        }
        cur = err.source();
    }
    None
}

/// A rustls error in an operator's words.
pub fn rustls_reason(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => "certificate not trusted (unknown issuer)".to_string(),
            C::Expired | C::ExpiredContext { .. } => "certificate expired".to_string(),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "certificate not valid yet (check the clock)".to_string()
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "certificate is for another host name".to_string()
            }
            C::Revoked => "certificate revoked".to_string(),
            C::BadSignature => "certificate has a bad signature".to_string(),
            other => format!("certificate refused ({other:?})"),
        },
        rustls::Error::AlertReceived(alert) => {
            format!("TLS handshake refused by the peer ({alert:?})")
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateHandshakeMessage { .. } => {
            "TLS handshake failed (is it an https server?)".to_string()
        }
        other => format!("TLS handshake failed ({})", sanitize(&other.to_string())),
    }
}

/// The innermost error text of `e`'s chain (hyper and io errors say the useful thing there).
fn root_cause(e: &(dyn StdError + 'static)) -> Option<String> {
    let mut cur = e.source()?;
    while let Some(next) = cur.source() {
        cur = next;
    }
    Some(cur.to_string())
}

/// Makes a free text safe to log: every `http://` or `https://` address in it is cut down to
/// [`peer_of`] (no path, query or credentials), and digit runs of 7 or more (phone numbers,
/// tokens) keep only their last 4 digits.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = find_scheme(rest) {
        out.push_str(&mask_digits(&rest[..start]));
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || "\"'`<>()".contains(c))
            .unwrap_or(tail.len());
        let url = tail[..end].trim_end_matches([',', '.', ';', ')']);
        out.push_str(&peer_of(url));
        rest = &tail[url.len()..];
    }
    out.push_str(&mask_digits(rest));
    out
}

fn find_scheme(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    [lower.find("http://"), lower.find("https://")]
        .into_iter()
        .flatten()
        .min()
}

fn mask_digits(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 7 {
            out.push('…');
            out.push_str(&run[run.len() - 4..]);
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_scheme_host_and_port_only() {
        assert_eq!(
            peer_of(
                "https://user:pw@billing.example.com/api/c?phone=%2B5491123456789&token=s3cr3t"
            ),
            "https://billing.example.com:443"
        );
        assert_eq!(peer_of("http://10.0.0.2:8080/x"), "http://10.0.0.2:8080");
        assert_eq!(peer_of("http://[::1]:81/"), "http://[::1]:81");
        assert_eq!(peer_of("not a url"), "an invalid address");
    }

    #[test]
    fn texts_lose_queries_tokens_and_numbers() {
        let t = sanitize(
            "error sending request for url (https://h.example:8443/c/+5491123456789?token=abc): \
             connection reset; phone 5491123456789",
        );
        assert_eq!(
            t,
            "error sending request for url (https://h.example:8443): connection reset; phone …6789"
        );
        assert!(!t.contains("token"));
        assert_eq!(sanitize("HTTP 503 in 1500 ms"), "HTTP 503 in 1500 ms");
    }
}
