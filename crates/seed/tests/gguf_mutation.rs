//! Seeded mutation of the real models' GGUF headers: every variant must either
//! load or be rejected with a typed error — never panic, never allocate more than
//! the file could justify.
//!
//! The real files carry 100–250 MB of weights that no parser looks at, so each
//! model is first *shrunk*: its header is re-written with every metadata value
//! as it is (the whole vocabulary, merges, scores, token types, chat template) and
//! the tensors of the first two layers with their dimensions scaled down (Q8_0,
//! zero-filled). That file loads completely (weights, tokenizer, template), so a
//! variant can fail, or pass, at any stage. Then 10,000 variants in all flip
//! bits and bytes, truncate, splice one part of the header over another, and
//! write huge counts and lengths at random places, each seeded so a failure
//! names the variant that caused it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use kernels::GgmlType;
use model::gguf::{GgufBuilder, GgufFile, Value};
use model::LoadedModel;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Counts each thread's live heap bytes and their peak (a test loads its variants
/// on its own thread, so the two tests do not see each other's allocations).
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let now = LIVE.with(|l| {
        l.set(l.get() + delta);
        l.get()
    });
    PEAK.with(|p| p.set(p.get().max(now)));
}

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as `System.alloc`.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: same contract as `System.dealloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Dimension changes that shrink a model: (old value, new value) for the tensor
/// dimensions and the metadata counts that describe them.
struct Shrink {
    arch: &'static str,
    dims: &'static [(usize, usize)],
    kvs: &'static [(&'static str, u32)],
}

const SMOLLM2: Shrink = Shrink {
    arch: "llama",
    // n_embd (= n_head · head_dim) 576 → 64, k/v 192 → 32, n_ff 1536 → 128.
    dims: &[(576, 64), (192, 32), (1536, 128)],
    kvs: &[
        ("llama.embedding_length", 64),
        ("llama.feed_forward_length", 128),
        ("llama.attention.head_count", 2),
        ("llama.attention.head_count_kv", 1),
        ("llama.rope.dimension_count", 32),
        ("llama.block_count", 2),
    ],
};

const GEMMA3: Shrink = Shrink {
    arch: "gemma3",
    // n_embd 640 → 64, q 1024 → 64, head_dim (k/v, q/k norms) 256 → 32, n_ff 2048 → 128.
    dims: &[(640, 64), (1024, 64), (256, 32), (2048, 128)],
    kvs: &[
        ("gemma3.embedding_length", 64),
        ("gemma3.feed_forward_length", 128),
        ("gemma3.attention.head_count", 2),
        ("gemma3.attention.head_count_kv", 1),
        ("gemma3.attention.key_length", 32),
        ("gemma3.attention.value_length", 32),
        ("gemma3.block_count", 2),
    ],
};

/// The shrunk model: real metadata, small tensors of layers 0 and 1.
fn shrunk(name: &str, how: &Shrink) -> Vec<u8> {
    let path = seed::catalogue::ensure_model(name).unwrap_or_else(|e| panic!("fetching {name}: {e:#}"));
    let real = GgufFile::open(&path).expect("the real file parses");
    assert_eq!(real.get_str("general.architecture").expect("architecture"), how.arch);
    let mut b = GgufBuilder::new();
    b.alignment(real.alignment as u32);
    for (key, value) in real.metadata() {
        let value = match how.kvs.iter().find(|(k, _)| *k == key) {
            Some(&(_, v)) => match value {
                Value::U64(_) => Value::U64(u64::from(v)),
                _ => Value::U32(v),
            },
            None => value.clone(),
        };
        b.add_kv(key, value);
    }
    for t in real.tensors() {
        let layer = t.name.strip_prefix("blk.").and_then(|r| r.split('.').next()).and_then(|n| n.parse::<usize>().ok());
        if layer.is_some_and(|l| l >= 2) {
            continue;
        }
        let dims: Vec<usize> =
            t.dims.iter().map(|&d| how.dims.iter().find(|(old, _)| *old == d).map_or(d, |&(_, new)| new)).collect();
        let ty = if t.ty == GgmlType::F32 { GgmlType::F32 } else { GgmlType::Q8_0 };
        let size = ty.row_size(dims[0]).expect("whole blocks") * dims[1..].iter().product::<usize>();
        b.add_tensor(&t.name, ty, &dims, vec![0u8; size]);
    }
    let bytes = b.build();
    let loaded = LoadedModel::from_file(Arc::new(GgufFile::from_bytes(bytes.clone()).expect("shrunk file parses")));
    if let Err(e) = loaded {
        panic!("the shrunk {name} must load completely: {e}");
    }
    bytes
}

/// Where the header ends (the first tensor's data).
fn header_len(bytes: &[u8]) -> usize {
    GgufFile::from_bytes(bytes.to_vec()).expect("parses").data_offset()
}

/// One seeded variant of `base`, whose header is `base[..header]`.
fn mutate(rng: &mut ChaCha8Rng, base: &[u8], header: usize) -> Vec<u8> {
    let mut v = base.to_vec();
    let at = |rng: &mut ChaCha8Rng, len: usize| rng.gen_range(0..len.max(1));
    for _ in 0..rng.gen_range(1..=3) {
        match rng.gen_range(0..5) {
            // Bit flips.
            0 => {
                for _ in 0..rng.gen_range(1..=8) {
                    let i = at(rng, header.min(v.len()));
                    if let Some(b) = v.get_mut(i) {
                        *b ^= 1 << rng.gen_range(0..8);
                    }
                }
            }
            // Random bytes.
            1 => {
                let i = at(rng, header.min(v.len()));
                let n = rng.gen_range(1..=16).min(v.len() - i.min(v.len()));
                rng.fill(&mut v[i..i + n]);
            }
            // Truncation, anywhere in the file.
            2 => {
                let n = at(rng, v.len());
                v.truncate(n);
            }
            // Splice: one piece of the header over another, or inserted.
            3 => {
                let h = header.min(v.len());
                let (src, dst) = (at(rng, h), at(rng, h));
                let n = rng.gen_range(1..=256).min(h - src).min(h.saturating_sub(dst));
                let piece = v[src..src + n].to_vec();
                if rng.gen_bool(0.5) {
                    v[dst..dst + n].copy_from_slice(&piece);
                } else {
                    v.splice(dst..dst, piece);
                }
            }
            // Inflate: a huge count or length at a random place.
            _ => {
                let big: u64 = match rng.gen_range(0..6) {
                    0 => u64::MAX,
                    1 => u64::from(u32::MAX),
                    2 => 1 << 62,
                    3 => 1 << 40,
                    4 => v.len() as u64 + rng.gen_range(1..1024),
                    _ => rng.gen(),
                };
                let width = if rng.gen_bool(0.5) { 8 } else { 4 };
                let i = at(rng, header.min(v.len()).saturating_sub(width));
                if i + width <= v.len() {
                    v[i..i + width].copy_from_slice(&big.to_le_bytes()[..width]);
                }
            }
        }
    }
    v
}

/// Mutates `base` `n` times; returns (loaded, rejected, largest peak allocation).
fn run(name: &str, base: &[u8], n: usize, seed: u64) -> (usize, usize, usize) {
    let header = header_len(base);
    let (mut loaded, mut rejected, mut largest) = (0, 0, 0);
    for i in 0..n {
        let variant_seed = seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
        let mut rng = ChaCha8Rng::seed_from_u64(variant_seed);
        let bytes = mutate(&mut rng, base, header);
        let len = bytes.len();
        let before = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(before));
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let file = GgufFile::from_bytes(bytes).map_err(|e| e.to_string())?;
            LoadedModel::from_file(Arc::new(file)).map(|_| ()).map_err(|e| e.to_string())
        }));
        let peak = (PEAK.with(Cell::get) - before).max(0) as usize;
        match outcome {
            Ok(Ok(())) => loaded += 1,
            Ok(Err(message)) => {
                assert!(!message.is_empty(), "{name} variant {variant_seed}: an error without a message");
                rejected += 1;
            }
            Err(_) => panic!("{name} variant {variant_seed} panicked (len {len})"),
        }
        // The file itself (held once) plus what parsing and loading build from
        // it: the vocabulary's strings and maps, the weights' f32 norm vectors.
        let bound = 16 * len + (64 << 20);
        assert!(peak <= bound, "{name} variant {variant_seed}: {peak} bytes at peak for a {len}-byte file");
        largest = largest.max(peak);
    }
    (loaded, rejected, largest)
}

/// Variants per model: 10,000 in all.
const SMOLLM2_VARIANTS: usize = 7_500;
const GEMMA3_VARIANTS: usize = 2_500;

fn check(name: &str, how: &Shrink, n: usize, seed: u64) {
    let base = shrunk(name, how);
    let (loaded, rejected, largest) = run(name, &base, n, seed);
    eprintln!(
        "{name}: {n} variants of a {}-byte shrunk file: {loaded} loaded, {rejected} rejected; largest peak {} MiB",
        base.len(),
        largest >> 20
    );
    // The loaded variants build the whole vocabulary, so the counter must have seen it.
    assert!(largest > base.len() / 4, "the allocation counter saw only {largest} bytes");
    assert_eq!(loaded + rejected, n);
    assert!(rejected > n / 4, "{name}: too few variants were rejected ({rejected}) for the test to mean much");
}

#[test]
fn mutated_smollm2_headers_load_or_fail_with_a_typed_error() {
    check("smollm2-135m-instruct", &SMOLLM2, SMOLLM2_VARIANTS, 1);
}

#[test]
fn mutated_gemma3_headers_load_or_fail_with_a_typed_error() {
    check("gemma3-270m", &GEMMA3, GEMMA3_VARIANTS, 2);
}
