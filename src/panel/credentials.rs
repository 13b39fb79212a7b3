//! How hostmig logs into a source's database server (PANEL.md, "Reaching a
//! source's database servers"): the `admin_login` and `admin_password` of
//! its `DatabaseServers` row; for a local server whose row has no password,
//! the login `admin` with the password of `.psa.shadow`.

use super::records::Fields;
use crate::secret::Secret;

/// The login and password for the server of a `DatabaseServers` row;
/// `shadow` is the password `.psa.shadow` holds.
pub fn db_server_login(server: &Fields, shadow: &Secret) -> (String, Secret) {
    let user = server.text("admin_login").unwrap_or_default();
    let password = server.text("admin_password").unwrap_or_default();
    let host = server.text("host").unwrap_or_default();
    if password.is_empty() && matches!(host.as_str(), "localhost" | "127.0.0.1") {
        return ("admin".to_owned(), shadow.clone());
    }
    (user, Secret::new(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(host: &str, login: &str, password: &str) -> Fields {
        [
            ("host".to_owned(), host.into()),
            ("admin_login".to_owned(), login.into()),
            ("admin_password".to_owned(), password.into()),
        ]
        .into()
    }

    #[test]
    fn the_row_or_the_panel_password_for_a_local_server() {
        let shadow = Secret::new("from-shadow".into());
        let got = |r: Fields| {
            let (u, p) = db_server_login(&r, &shadow);
            (u, p.expose().to_owned())
        };
        assert_eq!(
            got(row("localhost", "root", "")),
            ("admin".into(), "from-shadow".into())
        );
        assert_eq!(
            got(row("127.0.0.1", "", "")),
            ("admin".into(), "from-shadow".into())
        );
        assert_eq!(
            got(row("db.example", "dba", "pw")),
            ("dba".into(), "pw".into())
        );
        // A remote server without a password is not given the panel's.
        assert_eq!(got(row("db.example", "dba", "")), ("dba".into(), "".into()));
        assert_eq!(
            got(row("localhost", "dba", "pw")),
            ("dba".into(), "pw".into())
        );
    }
}
