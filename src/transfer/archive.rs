//! Commands the transports run on the source.

use std::path::Path;

/// A POSIX shell word: the text in single quotes.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The source command that writes the tree at `dir` as a tar stream, its
/// entries relative to the tree (`.`, `./a`, ...); nothing when the tree
/// does not exist.
pub fn tar_tree_command(dir: &Path) -> String {
    super::listing::bounded_stderr(&format!(
        "{}tar --sparse --numeric-owner -cf - .",
        super::listing::enter(dir)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a.example"), "'a.example'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("/var/www/vhosts"), "'/var/www/vhosts'");
    }
}
