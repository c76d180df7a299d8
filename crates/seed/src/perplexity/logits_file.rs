//! llama-perplexity's file of base log-probabilities (`--kl-divergence-base`),
//! so that either tool can write the reference and either can compare with it.
//!
//! Layout (little-endian): the 8 bytes `_logits_`; `n_ctx` (u32); `n_vocab` (i32);
//! `n_chunk` (i32); the `n_chunk · n_ctx` evaluated tokens (i32, as tokenized, the
//! first not yet replaced by BOS); then for each chunk, one record per scored
//! position (`n_ctx − 1 − n_ctx/2` of them, the second half of the chunk but its
//! last). A record is `nv = 2·⌈n_vocab/2⌉ + 4` u16 words: an f32 `scale` and an f32
//! `min_log_prob` (4 words), then each token's log-probability as
//! `min_log_prob + scale·q`, `q` a u16 (0 for anything below the floor), then
//! padding. The floor is the larger of the smallest logit and the largest minus
//! 16 nats, so 65,535 steps cover at most 16 nats (≈ 0.00024 nats a step).

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use kernels::quant::search::nearest_int;

/// The file's first 8 bytes.
pub const MAGIC: &[u8; 8] = b"_logits_";

/// What precedes the records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Tokens per chunk.
    pub n_ctx: usize,
    /// Vocabulary size of the model that wrote it.
    pub n_vocab: usize,
    /// Chunks.
    pub n_chunk: usize,
    /// The `n_chunk · n_ctx` tokens evaluated.
    pub tokens: Vec<u32>,
}

impl Header {
    /// u16 words per record.
    pub fn record_words(&self) -> usize {
        record_words(self.n_vocab)
    }

    /// Records (scored positions) per chunk.
    pub fn records_per_chunk(&self) -> usize {
        self.n_ctx - 1 - self.n_ctx / 2
    }

    /// The file's size in bytes.
    fn file_len(&self) -> u64 {
        let records = (self.n_chunk * self.records_per_chunk()) as u64;
        20 + 4 * (self.n_chunk * self.n_ctx) as u64 + records * self.record_words() as u64 * 2
    }
}

fn record_words(n_vocab: usize) -> usize {
    2 * n_vocab.div_ceil(2) + 4
}

/// Encodes one position's logits as a record (`record.len()` = its word count)
/// and returns the negative log-likelihood of `next`, as llama-perplexity does.
pub fn encode(logits: &[f32], next: usize, record: &mut [u16]) -> f64 {
    let (mut max, mut min) = (logits[0], logits[0]);
    for &l in &logits[1..] {
        max = max.max(l);
        min = min.min(l);
    }
    let min = min.max(max - 16.0);
    let sum_exp: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
    let log_sum_exp = sum_exp.ln() as f32;
    let min_log_prob = min - max - log_sum_exp;
    let scale = (max - min) / 65535.0;
    record[..2].copy_from_slice(&halves(scale));
    record[2..4].copy_from_slice(&halves(min_log_prob));
    let q = &mut record[4..];
    q.fill(0);
    if scale != 0.0 {
        let inv = 1.0 / scale;
        for (q, &l) in q.iter_mut().zip(logits) {
            *q = if l > min { nearest_int(inv * (l - min)) as u16 } else { 0 };
        }
    }
    f64::from(max + log_sum_exp - logits[next])
}

/// An f32 as the two u16 words it occupies in memory.
fn halves(x: f32) -> [u16; 2] {
    let b = x.to_le_bytes();
    [u16::from_le_bytes([b[0], b[1]]), u16::from_le_bytes([b[2], b[3]])]
}

/// One record, read.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// Step between quantized log-probabilities.
    pub scale: f32,
    /// Log-probability of quant 0.
    pub min_log_prob: f32,
    /// The quantized log-probabilities (`n_vocab` of them).
    pub q: &'a [u16],
}

impl<'a> Record<'a> {
    /// Views `words` (one record) for a vocabulary of `n_vocab`.
    pub fn new(words: &'a [u16], n_vocab: usize) -> Record<'a> {
        let f = |a: u16, b: u16| {
            let (a, b) = (a.to_le_bytes(), b.to_le_bytes());
            f32::from_le_bytes([a[0], a[1], b[0], b[1]])
        };
        Record { scale: f(words[0], words[1]), min_log_prob: f(words[2], words[3]), q: &words[4..4 + n_vocab] }
    }

    /// Token `i`'s log-probability.
    #[inline]
    pub fn log_prob(&self, i: usize) -> f32 {
        self.scale * f32::from(self.q[i]) + self.min_log_prob
    }
}

/// Writes a file record by record.
pub struct Writer<W: Write> {
    out: W,
    words: Vec<u16>,
    bytes: Vec<u8>,
}

impl<W: Write> Writer<W> {
    /// Writes the header.
    pub fn new(mut out: W, header: &Header) -> io::Result<Writer<W>> {
        out.write_all(MAGIC)?;
        for n in [header.n_ctx, header.n_vocab, header.n_chunk] {
            let n = u32::try_from(n).map_err(|_| io::Error::other("a count over 2³²"))?;
            out.write_all(&n.to_le_bytes())?;
        }
        for &t in &header.tokens {
            out.write_all(&t.to_le_bytes())?;
        }
        let words = vec![0u16; header.record_words()];
        Ok(Writer { out, bytes: Vec::with_capacity(words.len() * 2), words })
    }

    /// Writes the record of one scored position; returns the NLL of `next`.
    pub fn record(&mut self, logits: &[f32], next: usize) -> io::Result<f64> {
        let nll = encode(logits, next, &mut self.words);
        self.bytes.clear();
        self.bytes.extend(self.words.iter().flat_map(|w| w.to_le_bytes()));
        self.out.write_all(&self.bytes)?;
        Ok(nll)
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Why a base file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LogitsFileError {
    /// Reading failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// Not this format, or damaged.
    #[error("{path} is not a log-probability file of llama-perplexity's format: {why}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// Reads a file chunk by chunk.
pub struct Reader {
    path: PathBuf,
    inp: BufReader<File>,
    /// The header.
    pub header: Header,
    bytes: Vec<u8>,
}

impl Reader {
    /// Opens `path` and checks its header and length.
    pub fn open(path: &Path) -> Result<Reader, LogitsFileError> {
        let io_err = |source| LogitsFileError::Io { path: path.into(), source };
        let bad = |why: String| LogitsFileError::Format { path: path.into(), why };
        let file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        let mut inp = BufReader::with_capacity(1 << 20, file);
        let mut head = [0u8; 20];
        inp.read_exact(&mut head).map_err(|_| bad(format!("{len} bytes is too short for the header")))?;
        if &head[..8] != MAGIC {
            return Err(bad("it does not start with `_logits_`".into()));
        }
        let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]) as usize;
        let (n_ctx, n_vocab, n_chunk) = (word(8), word(12), word(16));
        if !(4..=1 << 24).contains(&n_ctx) || n_vocab == 0 || n_vocab > 1 << 24 || n_chunk == 0 || n_chunk > 1 << 24 {
            return Err(bad(format!("implausible sizes: n_ctx {n_ctx}, n_vocab {n_vocab}, {n_chunk} chunks")));
        }
        let mut header = Header { n_ctx, n_vocab, n_chunk, tokens: Vec::new() };
        if header.file_len() != len {
            return Err(bad(format!(
                "{len} bytes, but its header (n_ctx {n_ctx}, n_vocab {n_vocab}, {n_chunk} chunks) needs {}",
                header.file_len()
            )));
        }
        let mut tokens = vec![0u8; 4 * n_ctx * n_chunk];
        inp.read_exact(&mut tokens).map_err(io_err)?;
        header.tokens = tokens.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if let Some(t) = header.tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(bad(format!("token {t} is outside its vocabulary of {n_vocab}")));
        }
        Ok(Reader { path: path.into(), inp, header, bytes: Vec::new() })
    }

    /// Reads the next chunk's records into `words`.
    pub fn next_chunk(&mut self, words: &mut Vec<u16>) -> Result<(), LogitsFileError> {
        let n = self.header.records_per_chunk() * self.header.record_words();
        self.bytes.resize(2 * n, 0);
        self.inp
            .read_exact(&mut self.bytes)
            .map_err(|source| LogitsFileError::Io { path: self.path.clone(), source })?;
        words.clear();
        words.extend(self.bytes.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_gives_back_the_log_probabilities() {
        let logits: Vec<f32> = (0..11).map(|i| (i as f32 * 0.7).sin() * 5.0).collect();
        let mut words = vec![0u16; record_words(logits.len())];
        assert_eq!(words.len(), 16);
        let nll = encode(&logits, 3, &mut words);
        let r = Record::new(&words, logits.len());
        let lse = logits.iter().map(|&l| f64::from(l).exp()).sum::<f64>().ln();
        for (i, &l) in logits.iter().enumerate() {
            let exact = f64::from(l) - lse;
            assert!((f64::from(r.log_prob(i)) - exact).abs() < 1e-3, "token {i}: {} vs {exact}", r.log_prob(i));
        }
        assert!((nll + (f64::from(logits[3]) - lse)).abs() < 1e-5);
    }
}
