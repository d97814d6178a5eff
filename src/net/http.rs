//! The one HTTP client builder every outbound endpoint uses (billing lookup, ticket
//! forwarding, `[[http_sms]]`, `[[android]]`): rustls with the Mozilla roots bundled plus the
//! endpoint's optional `ca_file`, timeouts, no redirects followed, a `User-Agent` of
//! `pasarela/<version>`; and [`read_capped`], which stops reading an answer at its cap.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// `User-Agent` of every request pasarela makes.
pub const USER_AGENT: &str = concat!("pasarela/", env!("CARGO_PKG_VERSION"));

/// How an endpoint's client is built.
#[derive(Debug, Clone)]
pub struct ClientOptions<'a> {
    /// Whole-request limit (connect, TLS, request, answer).
    pub timeout: Duration,
    /// Connect (TCP and TLS handshake) limit; at most `timeout`.
    pub connect_timeout: Duration,
    /// A PEM file of CA certificates trusted besides the Mozilla roots (an ISP's own CA).
    pub ca_file: Option<&'a Path>,
}

impl<'a> ClientOptions<'a> {
    /// `timeout` for the request, the same (at most 10 s) to connect, no extra CA.
    pub fn new(timeout: Duration) -> ClientOptions<'a> {
        ClientOptions {
            timeout,
            connect_timeout: timeout.min(Duration::from_secs(10)),
            ca_file: None,
        }
    }

    pub fn ca_file(mut self, ca_file: Option<&'a Path>) -> ClientOptions<'a> {
        self.ca_file = ca_file;
        self
    }
}

/// Builds a client. Redirects are never followed: a 3xx comes back to the caller, which says
/// the configured address is not the final one. Fails only on an unreadable or empty
/// `ca_file` (the message names the file and why).
pub fn client(opts: &ClientOptions<'_>) -> Result<reqwest::Client, String> {
    let tls = client_tls_config(opts.ca_file)?;
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(opts.timeout)
        .connect_timeout(opts.connect_timeout.min(opts.timeout))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// The rustls client config: ring provider, TLS 1.2 and 1.3, the Mozilla roots
/// (webpki-roots) plus the certificates of `ca_file`.
pub fn client_tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        for cert in super::tls::load_certs(path)? {
            roots.add(cert).map_err(|e| {
                format!(
                    "{}: a certificate is not usable as a CA: {e}",
                    path.display()
                )
            })?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(config)
}

/// Why [`read_capped`] stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the answer is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The connection broke while reading (sanitized text).
    #[error("the answer broke off ({0})")]
    Broken(String),
}

/// Reads at most `limit` bytes of an answer, chunk by chunk: a longer body is an error as
/// soon as the cap is passed (it is never read whole first). A `Content-Length` above the
/// cap fails before reading.
pub async fn read_capped(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(BodyError::TooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                let why = if e.is_timeout() {
                    "no more data in time".to_string()
                } else {
                    super::error::sanitize(&e.without_url().to_string())
                };
                return Err(BodyError::Broken(why));
            }
        }
    }
}

/// A client for pasarela's own admin API (`pasarela send`, `customers import`, `doctor`).
/// With `tls_cert` (the admin listener's `tls_cert`), it speaks https and accepts exactly the
/// certificate in that file, whatever host name it carries: the CLI reaches the API by IP
/// address, and the box's own certificate is the one to trust. Without it, plain http.
pub fn admin_client(tls_cert: Option<&Path>, timeout: Duration) -> Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT);
    let builder = match tls_cert {
        Some(path) => {
            let leaf = super::tls::load_certs(path)?.swap_remove(0);
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS setup: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned { leaf, provider }))
                .with_no_client_auth();
            builder.use_preconfigured_tls(config)
        }
        None => builder,
    };
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Accepts one certificate (compared byte for byte) and checks the handshake's signatures.
#[derive(Debug)]
struct Pinned {
    leaf: rustls_pki_types::CertificateDer<'static>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
