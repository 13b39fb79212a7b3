//! `/etc/psa/psa.conf`: lines `KEY value`, `#` comments. Pure.

use std::path::PathBuf;

/// Where a server keeps its content, as its psa.conf says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub product_root: PathBuf,
    pub vhosts: PathBuf,
    pub mailnames: PathBuf,
    pub dump: PathBuf,
}

/// Reads the keys hostmig uses; absent keys take Plesk's defaults.
pub fn parse(text: &str) -> Layout {
    let mut layout = Layout {
        product_root: "/usr/local/psa".into(),
        vhosts: "/var/www/vhosts".into(),
        mailnames: "/var/qmail/mailnames".into(),
        dump: "/var/lib/psa/dumps".into(),
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        let value = PathBuf::from(value.trim());
        if !value.is_absolute() {
            continue;
        }
        match key {
            "PRODUCT_ROOT_D" => layout.product_root = value,
            "HTTPD_VHOSTS_D" => layout.vhosts = value,
            "PLESK_MAILNAMES_D" => layout.mailnames = value,
            "DUMP_D" => layout.dump = value,
            _ => {}
        }
    }
    layout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_defaults() {
        let l = parse("# c\nHTTPD_VHOSTS_D /srv/www\n  PLESK_MAILNAMES_D   /srv/mail  \nDUMP_D relative/ignored\nNOISE\nMYSQL_BIN_D /usr/bin\n");
        assert_eq!(l.vhosts, PathBuf::from("/srv/www"));
        assert_eq!(l.mailnames, PathBuf::from("/srv/mail"));
        assert_eq!(l.dump, PathBuf::from("/var/lib/psa/dumps"));
        assert_eq!(parse("").product_root, PathBuf::from("/usr/local/psa"));
    }
}
