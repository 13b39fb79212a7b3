//! The client's one request: a POST of a packet to the daemon's agent
//! endpoint, over HTTPS (trusting a CA file, or one certificate by its
//! SHA-256 fingerprint, which suits the daemon's generated self-signed
//! certificate) or plain HTTP on loopback. One connection per request;
//! the answer is read to its `Content-Length` (at most 64 MiB).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// How the daemon's certificate is trusted.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Certificates signed by the CAs of this PEM file (or the certificate itself).
    Ca(std::path::PathBuf),
    /// Exactly the certificate with this fingerprint (`SHA256:AA:BB:...`).
    Fingerprint(String),
}

/// Why the daemon could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Url(String),
    #[error("cannot reach {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("{0}")]
    Trust(String),
    #[error("the answer from {url} is not readable: {reason}")]
    Answer { url: String, reason: String },
}

const ANSWER_MAX: usize = 64 << 20;

/// Posts a packet; answers the HTTP status and the body.
pub fn post(
    url: &url::Url,
    trust: Option<&Trust>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, Vec<u8>), HttpError> {
    post_as(
        url,
        trust,
        "text/xml; charset=UTF-8",
        headers,
        body,
        Duration::from_secs(300),
    )
}

/// Posts `body` of `content_type`; an answer that takes longer than
/// `timeout` (the connection at most 10 s of it) fails.
pub fn post_as(
    url: &url::Url,
    trust: Option<&Trust>,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<(u16, Vec<u8>), HttpError> {
    let host = url
        .host_str()
        .ok_or_else(|| HttpError::Url(format!("the URL {url} names no host")))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| HttpError::Url(format!("the URL {url} names no port")))?;
    let shown = url.to_string();
    let connect_err = |reason: String| HttpError::Connect {
        url: shown.clone(),
        reason,
    };
    let addr = (host.trim_start_matches('[').trim_end_matches(']'), port)
        .to_socket_addrs()
        .map_err(|e| connect_err(e.to_string()))?
        .next()
        .ok_or_else(|| connect_err("the name has no address".into()))?;
    let tcp = TcpStream::connect_timeout(&addr, timeout.min(Duration::from_secs(10)))
        .map_err(|e| connect_err(e.to_string()))?;
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout.min(Duration::from_secs(60))));
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let mut request = format!(
        "POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let answer_err = |reason: String| HttpError::Answer {
        url: shown.clone(),
        reason,
    };
    match url.scheme() {
        "http" => exchange(tcp, &request, body).map_err(|e| answer_err(e.to_string())),
        "https" => {
            let config = tls_config(trust)?;
            let name = ServerName::try_from(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
            )
            .map_err(|e| HttpError::Url(format!("{host}: {e}")))?;
            let conn = rustls::ClientConnection::new(Arc::new(config), name)
                .map_err(|e| HttpError::Trust(e.to_string()))?;
            let stream = rustls::StreamOwned::new(conn, tcp);
            exchange(stream, &request, body).map_err(|e| {
                let text = e.to_string();
                if text.contains("certificate") || text.contains("fingerprint") {
                    HttpError::Trust(format!("the daemon at {shown} is not trusted: {text}"))
                } else {
                    connect_err(text)
                }
            })
        }
        other => Err(HttpError::Url(format!(
            "the URL {url} has scheme {other}; use https:// (or http:// on loopback)"
        ))),
    }
}

fn exchange<S: Read + Write>(
    mut stream: S,
    request: &str,
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("not an HTTP answer: {:?}", line.trim_end())))?;
    let mut length = None;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
    }
    let mut answer = Vec::new();
    match length {
        Some(n) if n > ANSWER_MAX => return Err(invalid(format!("an answer of {n} bytes"))),
        Some(n) => {
            answer.resize(n, 0);
            reader.read_exact(&mut answer)?;
        }
        None => {
            reader
                .take(ANSWER_MAX as u64 + 1)
                .read_to_end(&mut answer)?;
        }
    }
    Ok((status, answer))
}

fn invalid(text: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, text)
}

fn tls_config(trust: Option<&Trust>) -> Result<rustls::ClientConfig, HttpError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Trust(e.to_string()))?;
    let config = match trust {
        Some(Trust::Fingerprint(fp)) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                fingerprint: normalized(fp),
                provider,
            }))
            .with_no_client_auth(),
        Some(Trust::Ca(path)) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
                HttpError::Trust(format!("cannot read the CA file {}: {e}", path.display()))
            })?;
            for cert in certs {
                let cert = cert.map_err(|e| {
                    HttpError::Trust(format!("cannot read the CA file {}: {e}", path.display()))
                })?;
                roots.add(cert).map_err(|e| {
                    HttpError::Trust(format!("the CA file {} is not usable: {e}", path.display()))
                })?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            return Err(HttpError::Trust(
                "an https:// daemon needs --ca FILE or --fingerprint SHA256:... (serve prints its certificate's fingerprint when it starts)".into(),
            ))
        }
    };
    Ok(config)
}

/// A fingerprint as hex digits only, upper case.
fn normalized(fp: &str) -> String {
    fp.trim()
        .trim_start_matches("SHA256:")
        .trim_start_matches("sha256:")
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_ascii_uppercase()
}

/// Accepts exactly one certificate, by its SHA-256 fingerprint; the
/// handshake's signatures are still checked.
#[derive(Debug)]
struct Pinned {
    fingerprint: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = normalized(&crate::rpc::tls::fingerprint(end_entity));
        if seen == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "its certificate's fingerprint is {}, not the one given",
                crate::rpc::tls::fingerprint(end_entity)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
