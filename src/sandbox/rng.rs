//! A small deterministic generator (SplitMix64): the same seed gives the
//! same fixture on every machine and every run.

#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// An independent stream for one part of the fixture.
    pub fn fork(&mut self, label: &str) -> Rng {
        let mut h = self.next_u64();
        for b in label.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        Rng(h)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as u64) as usize]
    }

    /// Fills `buf` with bytes: text like a site's HTML, PHP, CSS and
    /// JavaScript when `text` (zstd -3 makes it 3 to 4 times smaller, as
    /// real ones), else random (incompressible, like images and archives).
    pub fn fill(&mut self, buf: &mut [u8], text: bool) {
        if !text {
            for chunk in buf.chunks_mut(8) {
                let v = self.next_u64().to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
            return;
        }
        let mut line = Vec::with_capacity(256);
        let mut i = 0;
        while i < buf.len() {
            line.clear();
            self.code_line(&mut line);
            let n = line.len().min(buf.len() - i);
            buf[i..i + n].copy_from_slice(&line[..n]);
            i += n;
        }
    }

    /// A word of the fixture's vocabulary, the frequent ones more often
    /// (about Zipf's law).
    fn word(&mut self, out: &mut Vec<u8>) {
        const SYLLABLES: [&str; 32] = [
            "ba", "co", "de", "fi", "gu", "ha", "ki", "lo", "ma", "ne", "po", "qu", "ra", "si",
            "tu", "ve", "wo", "xa", "yu", "ze", "an", "er", "in", "on", "st", "th", "ch", "ly",
            "ment", "tion", "ing", "ed",
        ];
        let r = (self.next_u64() % 10_000) as f64 / 10_000.0;
        let k = (r.powi(5) * 1024.0) as usize;
        out.extend_from_slice(SYLLABLES[k % 32].as_bytes());
        out.extend_from_slice(SYLLABLES[(k / 32) % 32].as_bytes());
        if k >= 256 {
            out.extend_from_slice(SYLLABLES[(k / 7) % 32].as_bytes());
        }
    }

    fn words(&mut self, out: &mut Vec<u8>, n: u64) {
        for j in 0..n {
            if j > 0 {
                out.push(b' ');
            }
            self.word(out);
        }
    }

    /// One line of markup, code or style, with names, numbers and text.
    fn code_line(&mut self, out: &mut Vec<u8>) {
        let indent = self.range(0, 5) as usize * 2;
        out.extend(std::iter::repeat_n(b' ', indent));
        let n = self.range(0, 300);
        match self.range(0, 8) {
            0 | 1 => {
                out.extend_from_slice(b"<div class=\"");
                self.word(out);
                out.push(b'-');
                self.word(out);
                out.extend_from_slice(format!("\" id=\"n{n}\">").as_bytes());
                let k = self.range(3, 12);
                self.words(out, k);
                out.extend_from_slice(b"</div>");
            }
            2 => {
                out.extend_from_slice(b"<p>");
                let k = self.range(6, 16);
                self.words(out, k);
                out.extend_from_slice(b"</p>");
            }
            3 => {
                out.extend_from_slice(b"$");
                self.word(out);
                out.extend_from_slice(b" = $this->");
                self.word(out);
                out.extend_from_slice(format!("({n}, '").as_bytes());
                self.word(out);
                out.extend_from_slice(b"');");
            }
            4 => {
                out.push(b'.');
                self.word(out);
                out.extend_from_slice(
                    format!(
                        " {{ margin: {}px {}px; color: #{:06x}; }}",
                        n % 40,
                        self.range(0, 40),
                        self.range(0, 24) * 0x0a_0b_0c
                    )
                    .as_bytes(),
                );
            }
            5 => {
                out.extend_from_slice(b"function ");
                self.word(out);
                out.push(b'(');
                self.word(out);
                out.extend_from_slice(b", ");
                self.word(out);
                out.extend_from_slice(b") { return ");
                self.word(out);
                out.extend_from_slice(format!(".length > {n}; }}").as_bytes());
            }
            6 => {
                out.extend_from_slice(b"<a href=\"/");
                self.word(out);
                out.extend_from_slice(format!("/{}.html\">", self.hex(4)).as_bytes());
                let k = self.range(1, 4);
                self.words(out, k);
                out.extend_from_slice(b"</a>");
            }
            _ => {
                out.extend_from_slice(b"// ");
                let k = self.range(4, 10);
                self.words(out, k);
            }
        }
        out.push(b'\n');
    }

    pub fn hex(&mut self, bytes: usize) -> String {
        (0..bytes)
            .map(|_| format!("{:02x}", self.next_u64() as u8))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    /// zstd -3's ratio on 1 MiB of `fill`.
    fn ratio(text: bool) -> f64 {
        let mut buf = vec![0u8; 1 << 20];
        Rng::new(7).fill(&mut buf, text);
        let packed = zstd::bulk::compress(&buf, 3).expect("zstd");
        buf.len() as f64 / packed.len() as f64
    }

    #[test]
    fn text_compresses_like_real_sites_and_binary_not_at_all() {
        let text = ratio(true);
        eprintln!(
            "zstd -3 ratio of text {text:.2}, of binary {:.3}",
            ratio(false)
        );
        assert!(
            (3.0..=4.0).contains(&text),
            "zstd -3 ratio of text {text:.2}"
        );
        let binary = ratio(false);
        assert!(binary < 1.01, "zstd -3 ratio of binary {binary:.3}");
    }
}
