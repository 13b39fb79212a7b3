//! A streaming reader of the tar archives a source sends (GNU tar's
//! default format: ustar headers, GNU long names and links, old GNU sparse
//! files, PAX extended headers). Written for untrusted input: checksums
//! are checked, every header that carries data of its own has a size
//! limit, and nothing but one entry's header lives in memory.

use std::io::Read;

/// Longest GNU long name or long link target accepted.
pub const MAX_LONG_NAME: u64 = 64 * 1024;
/// Largest PAX extended header accepted.
pub const MAX_PAX: u64 = 1024 * 1024;
/// Most sparse segments one file may have.
pub const MAX_SPARSE_SEGMENTS: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error("the archive is corrupt: {0}")]
    Corrupt(String),
    #[error("the archive has an oversized {what} ({size} bytes, at most {max} accepted)")]
    Oversized {
        what: &'static str,
        size: u64,
        max: u64,
    },
    #[error("the archive ends in the middle of an entry")]
    Truncated,
    #[error("the archive ends without its end-of-archive marker; the transfer was cut")]
    Unterminated,
    #[error("reading the archive failed: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    HardLink,
    Symlink,
    CharDevice,
    BlockDevice,
    Directory,
    Fifo,
}

/// One entry's metadata; its data follows in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub mtime: i64,
    /// Bytes of data in the archive (for a sparse file: of its segments).
    pub size: u64,
    pub link: Option<Vec<u8>>,
    /// For a sparse file: its real size and its data segments (offset, length).
    pub sparse: Option<(u64, Vec<(u64, u64)>)>,
}

/// Reads entries one after the other from a stream.
pub struct Reader<R: Read> {
    inner: R,
    /// Data bytes (and padding) of the current entry not yet read.
    remaining: u64,
    padding: u64,
    done: bool,
}

impl<R: Read> Reader<R> {
    pub fn new(inner: R) -> Self {
        Reader {
            inner,
            remaining: 0,
            padding: 0,
            done: false,
        }
    }

    fn block(&mut self) -> Result<Option<[u8; 512]>, TarError> {
        let mut block = [0u8; 512];
        let mut got = 0;
        while got < 512 {
            match self.inner.read(&mut block[got..])? {
                0 if got == 0 => return Ok(None),
                0 => return Err(TarError::Truncated),
                n => got += n,
            }
        }
        Ok(Some(block))
    }

    /// Skips what is left of the current entry's data and padding.
    fn skip_rest(&mut self) -> Result<(), TarError> {
        let mut left = self.remaining + self.padding;
        let mut buf = [0u8; 8192];
        while left > 0 {
            let n = self.inner.read(&mut buf[..left.min(8192) as usize])?;
            if n == 0 {
                return Err(TarError::Truncated);
            }
            left -= n as u64;
        }
        self.remaining = 0;
        self.padding = 0;
        Ok(())
    }

    /// Reads a header's own data (long names, PAX) into memory, bounded.
    fn small_data(&mut self, size: u64, what: &'static str, max: u64) -> Result<Vec<u8>, TarError> {
        if size > max {
            return Err(TarError::Oversized { what, size, max });
        }
        let mut data = vec![0u8; size as usize];
        self.inner
            .read_exact(&mut data)
            .map_err(|_| TarError::Truncated)?;
        self.padding = padding(size);
        self.remaining = 0;
        self.skip_rest()?;
        Ok(data)
    }

    /// Reads up to `buf.len()` bytes of the current entry's data; 0 at its end.
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, TarError> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(TarError::Truncated);
        }
        self.remaining -= n as u64;
        Ok(n)
    }

    /// The next entry, or `None` at the end of the archive.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, TarError> {
        if self.done {
            return Ok(None);
        }
        self.skip_rest()?;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        loop {
            let Some(block) = self.block()? else {
                // A proper archive ends with a zero block, never at EOF.
                return Err(TarError::Unterminated);
            };
            if block.iter().all(|&b| b == 0) {
                self.done = true;
                return Ok(None);
            }
            check_checksum(&block)?;
            let size = number(&block[124..136], "size")?;
            let flag = block[156];
            match flag {
                b'L' => {
                    long_name = Some(trim_nul(self.small_data(
                        size,
                        "long name header",
                        MAX_LONG_NAME,
                    )?));
                    continue;
                }
                b'K' => {
                    long_link = Some(trim_nul(self.small_data(
                        size,
                        "long link header",
                        MAX_LONG_NAME,
                    )?));
                    continue;
                }
                b'x' => {
                    pax = parse_pax(&self.small_data(size, "PAX header", MAX_PAX)?)?;
                    continue;
                }
                b'g' => {
                    self.small_data(size, "PAX global header", MAX_PAX)?;
                    continue;
                }
                _ => {}
            }
            let kind = match flag {
                b'0' | 0 | b'7' | b'S' => Kind::File,
                b'1' => Kind::HardLink,
                b'2' => Kind::Symlink,
                b'3' => Kind::CharDevice,
                b'4' => Kind::BlockDevice,
                b'5' => Kind::Directory,
                b'6' => Kind::Fifo,
                other => {
                    return Err(TarError::Corrupt(format!(
                        "unknown entry type {:?}",
                        other as char
                    )))
                }
            };
            let ustar = &block[257..263] == b"ustar\0";
            let mut path = trim_nul(block[0..100].to_vec());
            if ustar {
                let prefix = trim_nul(block[345..500].to_vec());
                if !prefix.is_empty() {
                    path = [prefix, b"/".to_vec(), path].concat();
                }
            }
            let mut entry = Entry {
                path: long_name.take().unwrap_or(path),
                kind,
                mode: number(&block[100..108], "mode")? as u32,
                mtime: number(&block[136..148], "mtime")? as i64,
                size,
                link: match kind {
                    Kind::HardLink | Kind::Symlink => Some(
                        long_link
                            .take()
                            .unwrap_or_else(|| trim_nul(block[157..257].to_vec())),
                    ),
                    _ => None,
                },
                sparse: None,
            };
            for (key, value) in &pax {
                match key.as_str() {
                    "path" => entry.path = value.clone(),
                    "linkpath" if entry.link.is_some() => entry.link = Some(value.clone()),
                    "size" => entry.size = pax_number(value, "size")?,
                    "mtime" => {
                        entry.mtime = pax_number(
                            value.split(|&b| b == b'.').next().unwrap_or(value),
                            "mtime",
                        )? as i64
                    }
                    _ => {}
                }
            }
            if flag == b'S' {
                entry.sparse = Some(self.sparse_map(&block)?);
            }
            self.remaining = entry.size;
            self.padding = padding(entry.size);
            // PAX sparse format 1.0 (`tar --format=posix --sparse`): the real
            // name and size in the PAX header, the map at the data's start.
            let pax_value = |key: &str| pax.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
            if pax_value("GNU.sparse.major").as_deref() == Some(b"1")
                && pax_value("GNU.sparse.minor").as_deref() == Some(b"0")
            {
                if let Some(name) = pax_value("GNU.sparse.name") {
                    entry.path = name;
                }
                let real = pax_number(
                    &pax_value("GNU.sparse.realsize").unwrap_or_default(),
                    "sparse real size",
                )?;
                let mut consumed = 0;
                let count = self.decimal_line(&mut consumed)?;
                if count > MAX_SPARSE_SEGMENTS as u64 {
                    return Err(TarError::Oversized {
                        what: "sparse map",
                        size: count,
                        max: MAX_SPARSE_SEGMENTS as u64,
                    });
                }
                let mut segments = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    segments.push((
                        self.decimal_line(&mut consumed)?,
                        self.decimal_line(&mut consumed)?,
                    ));
                }
                let mut skip = vec![0u8; padding(consumed) as usize];
                let mut at = 0;
                while at < skip.len() {
                    let n = self.read_data(&mut skip[at..])?;
                    if n == 0 {
                        return Err(TarError::Truncated);
                    }
                    at += n;
                }
                check_sparse(real, &segments, self.remaining)?;
                entry.size = self.remaining;
                entry.sparse = Some((real, segments));
            }
            if entry.path.is_empty() {
                return Err(TarError::Corrupt("an entry has no name".into()));
            }
            return Ok(Some(entry));
        }
    }

    /// One decimal number and its newline, from the entry's data.
    fn decimal_line(&mut self, consumed: &mut u64) -> Result<u64, TarError> {
        let mut value: u64 = 0;
        let mut digits = 0;
        loop {
            let mut byte = [0u8; 1];
            if self.read_data(&mut byte)? == 0 {
                return Err(TarError::Truncated);
            }
            *consumed += 1;
            match byte[0] {
                b'\n' if digits > 0 => return Ok(value),
                b @ b'0'..=b'9' if digits < 20 => {
                    digits += 1;
                    value = value
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(b - b'0')))
                        .ok_or_else(|| TarError::Corrupt("an out-of-range sparse map".into()))?;
                }
                _ => return Err(TarError::Corrupt("a malformed sparse map".into())),
            }
        }
    }

    /// The old GNU sparse map: four segments in the header, more in
    /// extension blocks, and the file's real size.
    fn sparse_map(&mut self, header: &[u8; 512]) -> Result<(u64, Vec<(u64, u64)>), TarError> {
        let mut segments = Vec::new();
        sparse_segments(&header[386..482], 4, &mut segments)?;
        let real = number(&header[483..495], "sparse real size")?;
        let mut extended = header[482] != 0;
        while extended {
            let block = self.block()?.ok_or(TarError::Truncated)?;
            sparse_segments(&block[0..504], 21, &mut segments)?;
            extended = block[504] != 0;
            if segments.len() > MAX_SPARSE_SEGMENTS {
                return Err(TarError::Oversized {
                    what: "sparse map",
                    size: segments.len() as u64,
                    max: MAX_SPARSE_SEGMENTS as u64,
                });
            }
        }
        check_sparse(real, &segments, number(&header[124..136], "size")?)?;
        Ok((real, segments))
    }
}

/// A sparse map must account for exactly the stored data and stay
/// within the file's real size.
fn check_sparse(real: u64, segments: &[(u64, u64)], stored: u64) -> Result<(), TarError> {
    let total = segments
        .iter()
        .try_fold(0u64, |sum, s| sum.checked_add(s.1));
    let inside = segments
        .iter()
        .all(|&(o, l)| o.checked_add(l).is_some_and(|end| end <= real));
    if total != Some(stored) || !inside {
        return Err(TarError::Corrupt(
            "the sparse map does not fit the file".into(),
        ));
    }
    Ok(())
}

/// Appends the (offset, length) pairs of a sparse map area.
fn sparse_segments(area: &[u8], count: usize, out: &mut Vec<(u64, u64)>) -> Result<(), TarError> {
    for i in 0..count {
        let at = i * 24;
        let offset = &area[at..at + 12];
        if offset.iter().all(|&b| b == 0) {
            continue;
        }
        out.push((
            number(offset, "sparse offset")?,
            number(&area[at + 12..at + 24], "sparse length")?,
        ));
    }
    Ok(())
}

fn padding(size: u64) -> u64 {
    (512 - size % 512) % 512
}

fn trim_nul(mut bytes: Vec<u8>) -> Vec<u8> {
    if let Some(end) = bytes.iter().position(|&b| b == 0) {
        bytes.truncate(end);
    }
    bytes
}

fn check_checksum(block: &[u8; 512]) -> Result<(), TarError> {
    let stored = number(&block[148..156], "checksum")?;
    let sum: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    if stored != sum {
        return Err(TarError::Corrupt("a header checksum does not match".into()));
    }
    Ok(())
}

/// An octal field (spaces and NULs around it), or base-256 (high bit set).
fn number(field: &[u8], what: &str) -> Result<u64, TarError> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        if field[0] & 0x40 != 0 {
            return Err(TarError::Corrupt(format!("a negative {what}")));
        }
        let mut n: u64 = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            n = n
                .checked_mul(256)
                .and_then(|n| n.checked_add(u64::from(b)))
                .ok_or_else(|| TarError::Corrupt(format!("an out-of-range {what}")))?;
        }
        return Ok(n);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ')
        .collect();
    if text.is_empty() {
        return Ok(0);
    }
    let s = std::str::from_utf8(&text)
        .map_err(|_| TarError::Corrupt(format!("an unreadable {what}")))?;
    u64::from_str_radix(s, 8).map_err(|_| TarError::Corrupt(format!("an unreadable {what}")))
}

fn pax_number(value: &[u8], what: &str) -> Result<u64, TarError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| TarError::Corrupt(format!("an unreadable PAX {what}")))
}

/// `length key=value\n` records.
fn parse_pax(data: &[u8]) -> Result<Vec<(String, Vec<u8>)>, TarError> {
    let bad = || TarError::Corrupt("a malformed PAX header".into());
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(bad());
        }
        let record = &rest[space + 1..len - 1];
        let eq = record.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        let key = String::from_utf8_lossy(&record[..eq]).into_owned();
        out.push((key, record[eq + 1..].to_vec()));
        rest = &rest[len..];
    }
    Ok(out)
}
