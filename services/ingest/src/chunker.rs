//! Content-defined chunking of one stream with a buffer that lives as long as
//! the producer: the cut points are FastCDC 2020's (normalization level 1,
//! no seed), exactly those of `fastcdc::v2020::StreamCDC`, so repositories
//! written before keep deduplicating.
//!
//! Why not `StreamCDC` itself: it allocates and zeroes a buffer of the
//! maximum chunk size (896 KiB) for every file and, for every chunk, copies
//! it out, moves the rest of the buffer down and zeroes the freed tail
//! again. On a tree of small files that was a megabyte of memset per file
//! (BENCHMARKS.md, "the producer"). Here the buffer is zeroed once, a chunk
//! is copied out once, and the unread tail moves only when the buffer runs
//! short of a maximum chunk.

use cairn_repo::format::Chunking;
use fastcdc::v2020::{cut, logarithm2, Normalization, MASKS};
use std::io::{ErrorKind, Read};

/// Bytes read ahead; at least twice the largest chunk so that moving the
/// unread tail down costs at most a third of what is read.
const BUFFER: usize = 4 << 20;

pub struct Chunker {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    buf: Vec<u8>,
}

impl Chunker {
    pub fn new(c: Chunking) -> Self {
        let bits = logarithm2(c.avg);
        let n = Normalization::Level1.bits();
        let max = c.max as usize;
        Chunker {
            min: c.min as usize,
            avg: c.avg as usize,
            max,
            mask_s: MASKS[(bits + n) as usize],
            mask_l: MASKS[(bits - n) as usize],
            buf: vec![0; BUFFER.max(3 * max)],
        }
    }

    /// Cuts everything `reader` yields into chunks, handing each to `emit`
    /// in order. Errors of the reader (as `io_err` makes them) and of `emit`
    /// end it.
    pub fn chunks<E>(
        &mut self,
        mut reader: impl Read,
        io_err: impl Fn(std::io::Error) -> E,
        mut emit: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let (mut start, mut end, mut eof) = (0usize, 0usize, false);
        loop {
            if end - start < self.max && !eof {
                // Keep the unread tail and fill the rest of the buffer.
                self.buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
                while end < self.buf.len() {
                    match reader.read(&mut self.buf[end..]) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => end += n,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(io_err(e)),
                    }
                }
            }
            if start == end {
                return Ok(());
            }
            let avail = (end - start).min(self.max);
            let (_, len) = cut(
                &self.buf[start..start + avail],
                self.min,
                self.avg,
                self.max,
                self.mask_s,
                self.mask_l,
                self.mask_s << 1,
                self.mask_l << 1,
            );
            emit(&self.buf[start..start + len])?;
            start += len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        // xorshift: reproducible, incompressible enough for cut points.
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn ours(c: Chunking, data: &[u8], reader_step: usize) -> Vec<Vec<u8>> {
        /// Hands out at most `step` bytes a read, as pipes and sockets do.
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(self.1).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut out = Vec::new();
        Chunker::new(c)
            .chunks(
                Trickle(data, reader_step),
                |e| e,
                |ch| {
                    out.push(ch.to_vec());
                    Ok(())
                },
            )
            .unwrap();
        out
    }

    fn theirs(c: Chunking, data: &[u8]) -> Vec<Vec<u8>> {
        fastcdc::v2020::StreamCDC::new(data, c.min, c.avg, c.max)
            .map(|ch| ch.unwrap().data)
            .collect()
    }

    #[test]
    fn cuts_exactly_where_stream_cdc_cuts() {
        let c = Chunking::default();
        let big = noise(9 << 20, 7);
        // Long runs of one byte force cuts at the maximum size.
        let mut runs = noise(3 << 20, 9);
        runs[1 << 20..2 << 20].fill(0);
        for data in [
            &[][..],
            &big[..1],
            &big[..c.min as usize],
            &big[..c.max as usize + 1],
            &big[..5_000_123],
            &big[..],
            &runs[..],
        ] {
            let want = theirs(c, data);
            for step in [usize::MAX, 65536, 4097] {
                assert_eq!(
                    ours(c, data, step),
                    want,
                    "{} bytes, reads of {step}",
                    data.len()
                );
            }
        }
    }

    #[test]
    fn small_chunking_settings_cut_the_same_too() {
        let c = Chunking {
            min: 2048,
            avg: 8192,
            max: 65536,
        };
        let data = noise(3 << 20, 3);
        assert_eq!(ours(c, &data, 10_000), theirs(c, &data));
    }

    #[test]
    fn a_failing_reader_ends_with_its_error() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk on fire"))
            }
        }
        let err = Chunker::new(Chunking::default())
            .chunks(Broken, |e| e, |_| Ok(()))
            .unwrap_err();
        assert_eq!(err.to_string(), "disk on fire");
    }
}
