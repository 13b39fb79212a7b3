//! Reading a stream on a thread of its own while another consumes it, so
//! receiving (SSH decryption) overlaps with writing files and hashing.
//! The queue between them is bounded: at most `DEPTH` chunks of `CHUNK`
//! bytes are in memory, whatever the stream's size.

use std::io::Read;
use std::sync::mpsc::{sync_channel, Receiver};

const CHUNK: usize = 256 * 1024;
const DEPTH: usize = 8;

/// Runs `consume` over what `source` yields, `source` being read on a
/// scoped thread. When `consume` succeeds, the rest of the stream is read
/// and dropped (a tar stream's padding), so the source ends cleanly. When
/// it fails, the queue is closed and, if the source has not ended,
/// `abort` is called to break a read that may be blocked. Answers
/// `consume`'s result and whether the source was read to its end without
/// error.
pub fn pumped<R, U, E>(
    source: &mut R,
    abort: impl FnOnce(),
    consume: impl FnOnce(&mut dyn Read) -> Result<U, E>,
) -> (Result<U, E>, std::io::Result<()>)
where
    R: Read + Send,
{
    std::thread::scope(|scope| {
        // A chunk travels with the length read into it; chunks come back
        // to be filled again, whole: no allocation nor zeroing per read.
        let (tx, rx) = sync_channel::<std::io::Result<(Vec<u8>, usize)>>(DEPTH);
        let (give_back, returned) = sync_channel::<Vec<u8>>(DEPTH + 2);
        let producer = scope.spawn(move || -> std::io::Result<()> {
            loop {
                let mut buf = returned.try_recv().unwrap_or_else(|_| vec![0; CHUNK]);
                match source.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => {
                        if tx.send(Ok((buf, n))).is_err() {
                            return Ok(());
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let kind = e.kind();
                        let text = e.to_string();
                        let _ = tx.send(Err(e));
                        return Err(std::io::Error::new(kind, text));
                    }
                }
            }
        });
        let mut reader = QueueReader {
            rx: &rx,
            chunk: Vec::new(),
            len: 0,
            pos: 0,
            give_back,
        };
        let out = consume(&mut reader);
        if out.is_ok() {
            while rx.recv().is_ok() {}
        } else {
            drop(rx);
            if !producer.is_finished() {
                abort();
            }
        }
        let read = producer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the reading thread failed")));
        (out, read)
    })
}

struct QueueReader<'a> {
    rx: &'a Receiver<std::io::Result<(Vec<u8>, usize)>>,
    chunk: Vec<u8>,
    /// Bytes of `chunk` that were read.
    len: usize,
    pos: usize,
    give_back: std::sync::mpsc::SyncSender<Vec<u8>>,
}

impl Read for QueueReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.len {
            match self.rx.recv() {
                Ok(Ok((chunk, len))) => {
                    let used = std::mem::replace(&mut self.chunk, chunk);
                    if !used.is_empty() {
                        let _ = self.give_back.try_send(used);
                    }
                    (self.len, self.pos) = (len, 0);
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.len - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_arrives_in_order_and_the_rest_is_drained() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut source = std::io::Cursor::new(data.clone());
        let (out, read) = pumped(
            &mut source,
            || unreachable!("no abort on success"),
            |r| {
                let mut first = vec![0u8; 1_000_000];
                r.read_exact(&mut first)?;
                Ok::<_, std::io::Error>(first)
            },
        );
        assert_eq!(out.expect("read"), data[..1_000_000]);
        assert!(read.is_ok());
        assert_eq!(source.position(), 3_000_000, "the rest was drained");
    }

    #[test]
    fn a_failing_consumer_stops_the_reader() {
        let mut endless = std::io::repeat(7);
        let (out, _) = pumped(&mut endless, || {}, |_| Err::<(), _>("refused"));
        assert_eq!(out, Err("refused"));
    }
}
