//! Compression where it pays (`migrations.content_compression`,
//! `migrations.db_compression`, CONFIG.md). Once per migration, before
//! its copies begin, one SSH session asks the source which compressors it
//! has and how fast zstd compresses there (`zstd -b1 -i0`: its own
//! benchmark on a half-compressible sample, ~0.1 s, at low priority), and
//! times zeros from the source (8 MiB, or 0.1 s once 1 MiB came, through
//! a small window): the link's rate as SSH carries
//! it (a configured cap lowers it further). `auto` compresses content
//! when the compressor is twice as fast as the link (zstd -3 when a
//! quarter of zstd -1's rate is; zstd at its
//! measured rate; gzip, which has no benchmark, at [`GZIP_BYTES_PER_S`]),
//! and turns on the MySQL protocol's compression (zlib) when the link is
//! slower than [`DB_COMPRESS_BELOW`]. A fast LAN is left uncompressed.

use std::io::Read;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::commands;
use crate::ssh::Session;

/// How content streams are compressed on the source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    #[default]
    None,
    /// zstd -1.
    Zstd,
    /// zstd -3: a few per cent smaller, at about half the rate; for links
    /// slow beside the source's zstd.
    #[serde(rename = "zstd-3")]
    ZstdStrong,
    Gzip,
}

impl Codec {
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Zstd => "zstd",
            Codec::ZstdStrong => "zstd-3",
            Codec::Gzip => "gzip",
        }
    }

    /// The source's pipeline stage after `tar` (at low priority); `None`
    /// for no compression.
    pub fn command(self) -> Option<&'static str> {
        match self {
            Codec::None => None,
            Codec::Zstd => Some("zstd -1 -q -c -T1"),
            Codec::ZstdStrong => Some("zstd -3 -q -c -T1"),
            Codec::Gzip => Some("gzip -1 -c"),
        }
    }

    /// A reader of the tar bytes of a stream compressed so.
    pub fn decode<'a, R: Read + 'a>(self, stream: R) -> std::io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Codec::None => Box::new(stream),
            Codec::Zstd | Codec::ZstdStrong => Box::new(zstd::stream::read::Decoder::new(stream)?),
            Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stream)),
        })
    }
}

/// `migrations.content_compression`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ContentCompression {
    #[default]
    Auto,
    /// zstd where the source has it, else gzip, else none.
    Zstd,
    /// gzip where the source has it, else none.
    Gzip,
    Off,
}

/// `migrations.db_compression`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DbCompression {
    #[default]
    Auto,
    On,
    Off,
}

/// What gzip -1 is taken to compress per second on one core (it has no
/// benchmark of its own to ask).
pub const GZIP_BYTES_PER_S: f64 = 40e6;
/// What zstd -1 is taken to compress per second when the source has it
/// but its benchmark gave no rate (an older zstd without `-i0`, say).
pub const ZSTD_BYTES_PER_S: f64 = 200e6;
/// `db_compression = "auto"` compresses on links slower than this.
pub const DB_COMPRESS_BELOW: f64 = 40e6;
/// A compressor is used when it is this much faster than the link (its
/// benchmark's rate is on one idle core; the stream shares that core with
/// tar and SSH's cipher).
const MARGIN: f64 = 2.0;
/// Bytes the link probe reads at most ...
const PROBE_BYTES: u64 = 8 << 20;
/// ... or for this long, once it has [`PROBE_MIN_BYTES`]: a slow link is
/// known soon, and the probe should not cost it much.
const PROBE_TIME: Duration = Duration::from_millis(100);
const PROBE_MIN_BYTES: u64 = 1 << 20;
/// The probe channel's window: at most this much is in flight when the
/// probe stops reading (a window that limits a long fat link only makes
/// it look slower, which errs towards compressing).
const PROBE_WINDOW: u32 = 256 << 10;
/// The probe gives up after this (a link slower than 8 MiB a minute).
const PROBE_LIMIT: Duration = Duration::from_secs(60);

/// What the source and its link were found to be.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LinkFacts {
    pub zstd: bool,
    pub gzip: bool,
    /// zstd -1's rate on the source, bytes of input per second.
    pub zstd_bytes_per_s: Option<f64>,
    /// The link's rate as SSH carries it, bytes per second.
    pub link_bytes_per_s: Option<f64>,
}

/// What a migration's copies use, and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Choice {
    pub content: Codec,
    pub db: bool,
    pub facts: LinkFacts,
    pub why: String,
}

/// Asks the source for its compressors (and, when `measure`, times the
/// link and zstd).
pub fn probe(session: &Session, measure: bool) -> Result<LinkFacts, String> {
    let tools = "command -v gzip >/dev/null 2>&1 && echo gzip; \
                 command -v zstd >/dev/null 2>&1 && echo zstd";
    let bench = "; command -v zstd >/dev/null 2>&1 && nice -n 10 zstd -b1 -i0 2>&1 | tr '\\r' '\\n' | grep 'MB/s' | tail -n 1";
    let command = if measure {
        format!("{tools}{bench}")
    } else {
        tools.to_owned()
    };
    let out = session
        .exec(&command, 64 * 1024)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut facts = LinkFacts {
        gzip: text.lines().any(|l| l.trim() == "gzip"),
        zstd: text.lines().any(|l| l.trim() == "zstd"),
        zstd_bytes_per_s: text.lines().find_map(zstd_rate),
        link_bytes_per_s: None,
    };
    if measure {
        facts.link_bytes_per_s = link_rate(session).ok();
    }
    Ok(facts)
}

/// zstd's benchmark line: ` 1#Synthetic 50% : 10000000 -> 3154228
/// (x3.170), 551.0 MB/s, 1856.2 MB/s` gives its compression rate (MB =
/// 10^6 bytes).
fn zstd_rate(line: &str) -> Option<f64> {
    let at = line.find("MB/s")?;
    let number = line[..at].trim_end().rsplit([' ', ',']).next()?;
    number.parse::<f64>().ok().map(|mb| mb * 1e6)
}

/// Times [`PROBE_BYTES`] of zeros from the source.
fn link_rate(session: &Session) -> Result<f64, String> {
    let command = format!("head -c {PROBE_BYTES} /dev/zero");
    let ssh = |e: ssh2::Error| format!("the SSH channel failed: {}", e.message());
    let mut channel = session
        .raw()
        .channel_open("session", PROBE_WINDOW, 32 << 10, None)
        .map_err(ssh)?;
    channel.exec(&command).map_err(ssh)?;
    channel.send_eof().map_err(ssh)?;
    let mut watched = crate::ssh::Watched::new(session, channel);
    let began = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    while got < PROBE_BYTES {
        if began.elapsed() > PROBE_LIMIT {
            return Err("the link probe took over a minute".into());
        }
        let n = watched.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        got += n as u64;
        if got >= PROBE_MIN_BYTES && began.elapsed() >= PROBE_TIME {
            // Enough to know; the channel is closed with the rest unread.
            let secs = began.elapsed().as_secs_f64();
            let _ = watched.channel.close();
            return Ok(got as f64 / secs);
        }
    }
    let secs = began.elapsed().as_secs_f64().max(1e-6);
    let _ = commands::finish(&mut watched.channel);
    if got < PROBE_BYTES {
        return Err(format!("the link probe ended after {got} bytes"));
    }
    Ok(got as f64 / secs)
}

/// The choice for these settings and facts; `cap` is a configured cap on
/// what the migration reads (bytes per second).
pub fn choose(
    content: ContentCompression,
    db: DbCompression,
    facts: LinkFacts,
    cap: Option<u64>,
) -> Choice {
    let link = match (facts.link_bytes_per_s, cap) {
        (Some(l), Some(c)) => Some(l.min(c as f64)),
        (l, c) => l.or(c.map(|c| c as f64)),
    };
    let shown = |r: f64| format!("{:.1} MB/s", r / 1e6);
    let link_text = link.map_or("not measured".to_owned(), shown);
    let (codec, content_why) = match content {
        ContentCompression::Off => (
            Codec::None,
            "off by migrations.content_compression".to_owned(),
        ),
        ContentCompression::Zstd | ContentCompression::Gzip => {
            let wanted = if content == ContentCompression::Zstd && facts.zstd {
                Codec::Zstd
            } else if facts.gzip {
                Codec::Gzip
            } else {
                Codec::None
            };
            (
                wanted,
                format!("{} as configured where the source has it", wanted.as_str()),
            )
        }
        ContentCompression::Auto => {
            let zstd_rate = facts
                .zstd
                .then(|| facts.zstd_bytes_per_s.unwrap_or(ZSTD_BYTES_PER_S));
            let pays = |rate: f64| link.is_none_or(|l| rate > MARGIN * l);
            match (zstd_rate, facts.gzip) {
                // -3 runs at about half of -1's rate, and the source's
                // core also runs tar and the cipher: only where the link
                // is slow beside it (on 1 Gbit/s beside 520 MB/s, -3 was
                // slower than -1).
                (Some(z), _) if pays(z / 4.0) => (
                    Codec::ZstdStrong,
                    format!(
                        "zstd -1 compresses {} on the source, the link carries {link_text}",
                        shown(z)
                    ),
                ),
                (Some(z), _) if pays(z) => (
                    Codec::Zstd,
                    format!(
                        "zstd compresses {} on the source, the link carries {link_text}",
                        shown(z)
                    ),
                ),
                (z, true) if pays(GZIP_BYTES_PER_S) && z.is_none() => (
                    Codec::Gzip,
                    format!("the source has gzip, not zstd; the link carries {link_text}"),
                ),
                (_, _) if !facts.zstd && !facts.gzip => (
                    Codec::None,
                    "the source has neither zstd nor gzip".to_owned(),
                ),
                _ => (
                    Codec::None,
                    format!("the link ({link_text}) is as fast as compressing there"),
                ),
            }
        }
    };
    let db_on = match db {
        DbCompression::On => true,
        DbCompression::Off => false,
        DbCompression::Auto => link.is_some_and(|l| l < DB_COMPRESS_BELOW),
    };
    Choice {
        content: codec,
        db: db_on,
        why: format!(
            "content {}: {content_why}; databases {} (link {link_text})",
            codec.as_str(),
            if db_on { "compressed" } else { "uncompressed" }
        ),
        facts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(zstd: Option<f64>, gzip: bool, link: Option<f64>) -> LinkFacts {
        LinkFacts {
            zstd: zstd.is_some(),
            gzip,
            zstd_bytes_per_s: zstd,
            link_bytes_per_s: link,
        }
    }

    #[test]
    fn auto_compresses_where_the_link_is_slower_than_the_compressor() {
        let (a, auto) = (ContentCompression::Auto, DbCompression::Auto);
        // 100 Mbit/s: zstd and the databases compressed.
        let slow = choose(a, auto, facts(Some(400e6), true, Some(11e6)), None);
        assert_eq!(
            (slow.content, slow.db),
            (Codec::ZstdStrong, true),
            "{}",
            slow.why
        );
        // A LAN faster than zstd there: neither.
        let lan = choose(a, auto, facts(Some(400e6), true, Some(350e6)), None);
        assert_eq!((lan.content, lan.db), (Codec::None, false), "{}", lan.why);
        // 1 Gbit/s: zstd yes, the databases' zlib no.
        let gbit = choose(a, auto, facts(Some(400e6), true, Some(115e6)), None);
        assert_eq!(
            (gbit.content, gbit.db),
            (Codec::Zstd, false),
            "{}",
            gbit.why
        );
        // A cap makes the link slow.
        let capped = choose(
            a,
            auto,
            facts(Some(400e6), true, Some(350e6)),
            Some(1 << 20),
        );
        assert_eq!((capped.content, capped.db), (Codec::ZstdStrong, true));
        // No zstd: gzip where it pays; neither: none.
        let gz = choose(a, auto, facts(None, true, Some(11e6)), None);
        assert_eq!(gz.content, Codec::Gzip, "{}", gz.why);
        let gz_lan = choose(a, auto, facts(None, true, Some(300e6)), None);
        assert_eq!(gz_lan.content, Codec::None, "{}", gz_lan.why);
        // zstd there, but its benchmark gave no rate: still zstd, at the
        // assumed rate.
        let unmeasured = LinkFacts {
            zstd: true,
            ..facts(None, true, Some(11e6))
        };
        assert_eq!(choose(a, auto, unmeasured, None).content, Codec::ZstdStrong);
        let none = choose(a, auto, facts(None, false, Some(11e6)), None);
        assert_eq!(none.content, Codec::None);
        assert!(none.why.contains("neither"), "{}", none.why);
        // Settings win; a missing compressor falls back.
        let z = choose(
            ContentCompression::Zstd,
            DbCompression::Off,
            facts(None, true, None),
            None,
        );
        assert_eq!((z.content, z.db), (Codec::Gzip, false));
        let off = choose(
            ContentCompression::Off,
            DbCompression::On,
            facts(Some(1e9), true, None),
            None,
        );
        assert_eq!((off.content, off.db), (Codec::None, true));
    }

    #[test]
    fn zstds_benchmark_line_gives_its_rate() {
        let line =
            " 1#Synthetic 50%     :  10000000 ->   3154228 (x3.170),  551.0 MB/s, 1856.2 MB/s";
        assert_eq!(zstd_rate(line), Some(551.0e6));
        assert_eq!(zstd_rate("zstd"), None);
    }

    #[test]
    fn each_codec_decodes_what_its_command_writes() {
        use std::io::Write;
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for (codec, program) in [
            (Codec::Zstd, "zstd"),
            (Codec::ZstdStrong, "zstd"),
            (Codec::Gzip, "gzip"),
        ] {
            let args: Vec<&str> = codec
                .command()
                .expect("a command")
                .split(' ')
                .skip(1)
                .collect();
            let mut child = std::process::Command::new(program)
                .args(&args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("{program} (install Debian's {program}): {e}"));
            let mut stdin = child.stdin.take().expect("stdin");
            let input = data.clone();
            let writer = std::thread::spawn(move || stdin.write_all(&input));
            let mut out = Vec::new();
            codec
                .decode(child.stdout.take().expect("stdout"))
                .expect("decoder")
                .read_to_end(&mut out)
                .expect("decoded");
            writer.join().expect("writer").expect("written");
            assert!(child.wait().expect("exit").success());
            assert_eq!(out, data, "{}", codec.as_str());
        }
        // A stream cut short is an error, never taken for a shorter whole.
        let packed = zstd::bulk::compress(&data, 1).expect("zstd");
        let cut = &packed[..packed.len() / 2];
        let mut out = Vec::new();
        assert!(Codec::Zstd
            .decode(cut)
            .expect("decoder")
            .read_to_end(&mut out)
            .is_err());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).expect("gzip");
        let packed = gz.finish().expect("gzip");
        let mut out = Vec::new();
        assert!(Codec::Gzip
            .decode(&packed[..packed.len() / 2])
            .expect("decoder")
            .read_to_end(&mut out)
            .is_err());
    }
}
