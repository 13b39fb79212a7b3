//! TLS for the API: the configured certificate, or a self-signed one made
//! once into the state directory and reused on every later start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("TLS certificate {path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("TLS key {path} holds no private key")]
    NoKey { path: PathBuf },
    #[error("TLS certificate {cert} and key {key} do not fit together: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("cannot write the generated TLS certificate into {dir}: {source}")]
    Write {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot generate a TLS certificate: {0}")]
    Generate(String),
}

/// The TLS files in use: the configured ones, or the generated ones.
pub fn files(configured: Option<&TlsFiles>, state_dir: &Path) -> Result<TlsFiles, TlsError> {
    if let Some(files) = configured {
        return Ok(files.clone());
    }
    let dir = state_dir.join("tls");
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    if !files.cert.exists() || !files.key.exists() {
        generate(&dir, &files)?;
    }
    Ok(files)
}

/// The SHA-256 fingerprint of a certificate's DER, as `SHA256:AA:BB:...`
/// (what `serve` prints and the client's `--fingerprint` takes).
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    let hex: Vec<String> = sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    format!("SHA256:{}", hex.join(":"))
}

/// The fingerprint of the first certificate of a PEM file.
pub fn file_fingerprint(path: &Path) -> Result<String, TlsError> {
    let cert = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })?
        .next()
        .ok_or_else(|| TlsError::NoCertificate {
            path: path.to_owned(),
        })?
        .map_err(|e| TlsError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(fingerprint(&cert))
}

/// A rustls server configuration (ring provider) for these files.
pub fn server_config(files: &TlsFiles) -> Result<rustls::ServerConfig, TlsError> {
    let read_err = |path: &Path| {
        let path = path.to_owned();
        move |e: rustls::pki_types::pem::Error| TlsError::Read {
            path,
            reason: e.to_string(),
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(read_err(&files.cert))?
        .collect::<Result<_, _>>()
        .map_err(read_err(&files.cert))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: files.key.clone(),
        },
        other => TlsError::Read {
            path: files.key.clone(),
            reason: other.to_string(),
        },
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| TlsError::Mismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
            reason: e.to_string(),
        })
}

fn generate(dir: &Path, files: &TlsFiles) -> Result<(), TlsError> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(host) = hostname().filter(|h| !names.contains(h)) {
        names.push(host);
    }
    let mut params =
        rcgen::CertificateParams::new(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "hostmig self-signed");
    let key = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let write_err = |source| TlsError::Write {
        dir: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(write_err)?;
    crate::state::write_atomic(&files.key, key.serialize_pem().as_bytes(), 0o600)
        .map_err(write_err)?;
    crate::state::write_atomic(&files.cert, cert.pem().as_bytes(), 0o644).map_err(write_err)?;
    tracing::info!(cert = %files.cert.display(), "generated a self-signed TLS certificate");
    Ok(())
}

fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}
