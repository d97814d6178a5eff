//! The server side of TLS and the PEM files behind it: reading `ca_file`, `tls_cert` and
//! `tls_key`, checking that a certificate and key belong together, the [`CertStore`] a
//! listener serves from (swapped whole on SIGHUP, so handshakes in progress keep the old
//! pair and later ones get the new), and the expiry date `doctor` warns about.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The certificates of a PEM file, in file order. Errors name the file and say what is wrong
/// (unreadable, not PEM, no certificate in it).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not a PEM file of certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no certificate (no -----BEGIN CERTIFICATE----- block)",
            path.display()
        ));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| format!("{} holds no usable private key: {e}", path.display()))
}

/// Which of the two files a problem is in, for the error's config key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairPart {
    Cert,
    Key,
}

/// Loads `cert` and `key` and checks that the key is the certificate's. The error says
/// which file is at fault: an unreadable key or a key of another certificate is the key's.
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, (PairPart, String)> {
    let certs = load_certs(cert).map_err(|e| (PairPart::Cert, e))?;
    let der = load_key(key).map_err(|e| (PairPart::Key, e))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider.key_provider.load_private_key(der).map_err(|e| {
        (
            PairPart::Key,
            format!("{}: unsupported key: {e}", key.display()),
        )
    })?;
    let pair = CertifiedKey::new(certs, signing);
    pair.keys_match().map_err(|_| {
        (
            PairPart::Key,
            format!(
                "{} is not the key of the certificate in {}",
                key.display(),
                cert.display()
            ),
        )
    })?;
    Ok(pair)
}

/// A listener's certificate and key, swapped whole by [`CertStore::reload`].
#[derive(Debug)]
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Loads the pair; see [`load_pair`].
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<CertStore>, (PairPart, String)> {
        let pair = load_pair(cert, key)?;
        Ok(Arc::new(CertStore {
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
            current: RwLock::new(Arc::new(pair)),
        }))
    }

    /// Reads the files again. On success new handshakes get the new pair; on failure the old
    /// pair stays in use and the error says why. Open connections are never touched.
    pub fn reload(&self) -> Result<(), String> {
        let pair = load_pair(&self.cert_path, &self.key_path).map_err(|(_, e)| e)?;
        if let Ok(mut cur) = self.current.write() {
            *cur = Arc::new(pair);
        }
        Ok(())
    }

    /// The certificate file, for log lines.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The leaf certificate served now.
    pub fn leaf(&self) -> Option<CertificateDer<'static>> {
        self.current
            .read()
            .ok()
            .and_then(|c| c.cert.first().cloned())
    }

    /// A rustls server config that serves this store's current pair (HTTP/1.1 only).
    pub fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions")
        .with_no_client_auth()
        .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

/// When a DER certificate stops being valid (`notAfter`), as Unix seconds. Read with a
/// minimal DER walk (Certificate → TBSCertificate → Validity): the only field pasarela needs,
/// without an X.509 crate's weight in a binary held under 12 MiB.
pub fn not_after(cert: &[u8]) -> Option<i64> {
    let (_, tbs_outer, _) = der_read(cert, 0x30)?;
    let (_, mut tbs, _) = der_read(tbs_outer, 0x30)?;
    // [0] EXPLICIT version, optional.
    if tbs.first() == Some(&0xa0) {
        tbs = der_read(tbs, 0xa0)?.2;
    }
    let (_, _, rest) = der_read(tbs, 0x02)?; // serialNumber
    let (_, _, rest) = der_read(rest, 0x30)?; // signature AlgorithmIdentifier
    let (_, _, rest) = der_read(rest, 0x30)?; // issuer
    let (_, validity, _) = der_read(rest, 0x30)?;
    let (_, _, after) = der_any(validity)?; // notBefore
    let (tag, value, _) = der_any(after)?;
    parse_time(tag, value)
}

/// One TLV with the expected tag: (tag, value, rest).
fn der_read(input: &[u8], tag: u8) -> Option<(u8, &[u8], &[u8])> {
    let r = der_any(input)?;
    (r.0 == tag).then_some(r)
}

fn der_any(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)? as usize;
    let (len, head) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *input.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = head.checked_add(len)?;
    let value = input.get(head..end)?;
    Some((tag, value, &input[end..]))
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 50–99 are 19xx) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn parse_time(tag: u8, value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?;
    let text = text.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 if text.len() == 12 => {
            let yy: i32 = text[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        0x18 if text.len() == 14 => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let num = |i: usize| rest.get(i..i + 2)?.parse::<u32>().ok();
    let date = chrono::NaiveDate::from_ymd_opt(year, num(0)?, num(2)?)?;
    let time = date.and_hms_opt(num(4)?, num(6)?, num(8)?)?;
    Some(time.and_utc().timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn pairs_are_checked_and_expiry_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["gw.isp.example".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 9);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let c = write(dir.path(), "c.pem", &cert.pem());
        let k = write(dir.path(), "k.pem", &key.serialize_pem());
        let o = write(dir.path(), "o.pem", &other.serialize_pem());
        assert!(load_pair(&c, &k).is_ok());
        let (part, msg) = load_pair(&c, &o).unwrap_err();
        assert_eq!(part, PairPart::Key);
        assert!(msg.contains("is not the key of the certificate"), "{msg}");
        let (part, _) = load_pair(&c, &dir.path().join("missing.pem")).unwrap_err();
        assert_eq!(part, PairPart::Key);
        let (part, msg) = load_pair(&k, &k).unwrap_err();
        assert_eq!(part, PairPart::Cert);
        assert!(msg.contains("holds no certificate"), "{msg}");
        let expected = chrono::NaiveDate::from_ymd_opt(2031, 7, 9)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp();
        assert_eq!(not_after(cert.der()), Some(expected));
        assert_eq!(not_after(b"\x30\x03\x02\x01"), None);
        assert_eq!(not_after(&[]), None);
    }
}
