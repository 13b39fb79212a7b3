//! The commands the transports run on the source, and the one way they
//! are run: an exec channel whose stdin is fed and closed, whose stderr
//! is bounded, and whose exit status and complaint are read at the end.

use std::io::{Read, Write};
use std::path::Path;

use crate::ssh::Session;

/// A POSIX shell word: the text in single quotes.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The shell prefix that enters `dir` on the source, or ends quietly
/// (printing nothing) when the tree does not exist there.
pub fn enter(dir: &Path) -> String {
    let d = shell_quote(&dir.display().to_string());
    format!("[ -d {d} ] || exit 0; cd {d} || exit 1; ")
}

/// Shell text that stores the whole of stdin in a temporary file named by
/// `$hostmig_list` (removed on exit), so a long list never deadlocks
/// against the command's output.
pub const LIST_FROM_STDIN: &str = "hostmig_list=$(mktemp) || exit 1; trap 'rm -f \"$hostmig_list\"' EXIT; cat > \"$hostmig_list\" || exit 1; ";

/// Inside the tree at `dir`: tar of exactly the NUL-separated paths given
/// on stdin (`./a`, `.`), directories without their contents; compressed
/// by `codec` at low priority (`nice` and `ionice -c 3`, each where the
/// source has it and lets it work), the command failing with tar's status
/// when tar fails.
pub fn tar_paths(dir: &Path, codec: super::link::Codec) -> String {
    let tar = "tar --sparse --numeric-owner --no-recursion --null -T \"$hostmig_list\" -cf -";
    let Some(compress) = codec.command() else {
        return format!("{}{LIST_FROM_STDIN}{tar}", enter(dir));
    };
    format!(
        "{}hostmig_list=$(mktemp) || exit 1; hostmig_st=$(mktemp) || exit 1; \
         trap 'rm -f \"$hostmig_list\" \"$hostmig_st\"' EXIT; cat > \"$hostmig_list\" || exit 1; \
         hostmig_nice=; nice -n 10 true 2>/dev/null && hostmig_nice='nice -n 10'; \
         ionice -c 3 true 2>/dev/null && hostmig_nice=\"$hostmig_nice ionice -c 3\"; \
         {{ $hostmig_nice {tar}; echo $? > \"$hostmig_st\"; }} | $hostmig_nice {compress}; hostmig_z=$?; \
         read hostmig_t < \"$hostmig_st\"; [ \"${{hostmig_t:-1}}\" = 0 ] || exit \"${{hostmig_t:-1}}\"; exit $hostmig_z",
        enter(dir)
    )
}

/// `command` in a subshell whose stderr goes to a temporary file, of
/// which the first 8 KiB are printed to stderr after it ended: however
/// much it complains, stderr never fills the channel's window.
fn bounded_stderr(command: &str) -> String {
    format!(
        "hostmig_err=$(mktemp) || exit 1; ( {command} ) 2>\"$hostmig_err\"; hostmig_status=$?; \
         head -c 8192 \"$hostmig_err\" >&2; rm -f \"$hostmig_err\"; exit $hostmig_status"
    )
}

/// Starts `command` (stderr bounded) and feeds it `input`, then EOF; its
/// stdout is the channel's to read.
pub fn start(
    session: &Session,
    command: &str,
    input: Option<&[u8]>,
) -> Result<ssh2::Channel, String> {
    let ssh = |e: ssh2::Error| format!("the SSH channel failed: {}", e.message());
    let mut channel = session.raw().channel_session().map_err(ssh)?;
    channel.exec(&bounded_stderr(command)).map_err(ssh)?;
    if let Some(input) = input {
        channel
            .write_all(input)
            .map_err(|e| format!("the SSH channel failed: {e}"))?;
    }
    channel.send_eof().map_err(ssh)?;
    Ok(channel)
}

/// After stdout was read to its end: the command's exit status and what it
/// printed on stderr.
pub fn finish(channel: &mut ssh2::Channel) -> Result<(i32, String), String> {
    let mut stderr = String::new();
    let _ = channel.stderr().take(8192).read_to_string(&mut stderr);
    channel
        .wait_close()
        .and_then(|_| channel.exit_status())
        .map(|status| (status, stderr.trim().to_owned()))
        .map_err(|e| format!("the SSH channel failed: {}", e.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a.example"), "'a.example'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("/var/www/vhosts"), "'/var/www/vhosts'");
        assert_eq!(
            enter(Path::new("/v/it's")),
            "[ -d '/v/it'\\''s' ] || exit 0; cd '/v/it'\\''s' || exit 1; "
        );
    }

    /// The compressed command keeps tar's exit status: a listed path that
    /// is missing fails it, though the compressor ended well.
    #[test]
    fn a_compressed_tar_keeps_tars_status_and_decodes() {
        use super::super::link::Codec;
        use std::io::Read;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.txt"), "hello\n".repeat(1000)).expect("write");
        let run = |codec: Codec, list: &[u8]| {
            let mut child = std::process::Command::new("sh")
                .arg("-c")
                .arg(tar_paths(dir.path(), codec))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("sh");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(list)
                .expect("list");
            let mut tar = Vec::new();
            codec
                .decode(child.stdout.take().expect("stdout"))
                .expect("decoder")
                .read_to_end(&mut tar)
                .expect("decoded");
            (child.wait().expect("exit").code(), tar)
        };
        for codec in [Codec::None, Codec::Zstd, Codec::ZstdStrong, Codec::Gzip] {
            let (status, tar) = run(codec, b"./a.txt\0");
            assert_eq!(status, Some(0), "{}", codec.as_str());
            assert!(
                tar.len() >= 6000 && tar.windows(5).any(|w| w == b"hello"),
                "{}",
                codec.as_str()
            );
            let (status, _) = run(codec, b"./a.txt\0./missing\0");
            assert_ne!(
                status,
                Some(0),
                "{}: a missing path fails the stream",
                codec.as_str()
            );
        }
    }
}
