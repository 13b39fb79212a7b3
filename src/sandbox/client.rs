//! A small blocking HTTPS client for hostmig's API, as a Plesk client
//! talks to it: one POST per connection with the login and password
//! headers, trusting only the certificate the server generated.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

pub struct ApiClient {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    login: String,
    password: String,
}

impl ApiClient {
    /// A client of the server at `addr` whose certificate is `cert_pem`.
    pub fn new(
        addr: SocketAddr,
        cert_pem: &Path,
        login: &str,
        password: &str,
    ) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(cert_pem)
            .map_err(|e| format!("cannot read {}: {e}", cert_pem.display()))?
        {
            let cert = cert.map_err(|e| format!("cannot read {}: {e}", cert_pem.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("cannot trust {}: {e}", cert_pem.display()))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(ApiClient {
            addr,
            tls: Arc::new(tls),
            login: login.to_owned(),
            password: password.to_owned(),
        })
    }

    /// The API's URL.
    pub fn url(&self) -> String {
        format!("https://{}/enterprise/control/agent.php", self.addr)
    }

    /// Posts a packet; answers the response body.
    pub fn post(&self, body: &str) -> Result<String, String> {
        let failed =
            |e: &dyn std::fmt::Display| format!("the request to {} failed: {e}", self.url());
        let name = ServerName::IpAddress(self.addr.ip().into());
        let conn = rustls::ClientConnection::new(self.tls.clone(), name).map_err(|e| failed(&e))?;
        let tcp = TcpStream::connect_timeout(&self.addr, Duration::from_secs(10))
            .map_err(|e| failed(&e))?;
        tcp.set_read_timeout(Some(Duration::from_secs(120))).ok();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let request = format!(
            "POST /enterprise/control/agent.php HTTP/1.1\r\nHost: {}\r\nContent-Type: text/xml\r\n\
             HTTP_AUTH_LOGIN: {}\r\nHTTP_AUTH_PASSWD: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            self.login,
            self.password,
            body.len()
        );
        tls.write_all(request.as_bytes()).map_err(|e| failed(&e))?;
        tls.write_all(body.as_bytes()).map_err(|e| failed(&e))?;
        tls.flush().map_err(|e| failed(&e))?;
        let mut response = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match tls.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => response.extend_from_slice(&buf[..n]),
                // A server that closes without close_notify: what came is whole
                // when its length says so (checked below).
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(failed(&e)),
            }
        }
        let text = String::from_utf8_lossy(&response);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return Err(failed(&"no HTTP response"));
        };
        if !head.starts_with("HTTP/1.1 200") {
            return Err(failed(&head.lines().next().unwrap_or("no status line")));
        }
        let length = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        });
        if length.is_some_and(|n| n != body.len()) {
            return Err(failed(&"the response was cut short"));
        }
        Ok(body.to_owned())
    }
}
