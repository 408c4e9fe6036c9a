//! The bounded fuzz pass (issue 14, hostile input): mutated and hand-made hostile inputs
//! for the config readers (`readers`) and random command sequences for the master's
//! namespace and the worker's block store (`rpc`). Each input must end in `Ok` or a typed
//! error whose message is one line; a panic fails the test.
//!
//! Deterministic: every property runs on a fixed-seed generator, so CI sees the same
//! cases each time. `FUZZ_CASES=100000 cargo test --release --test fuzz` runs a longer
//! pass (the default is a few hundred cases per property).
//!
//! The seeds live in `tests/corpus/` (committed: Fluid fixtures plus hostile cases);
//! inputs too big to commit (deep nesting, 10 MB strings) are generated here.

mod readers;
mod rpc;

use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::path::PathBuf;

/// Cases per property: `FUZZ_CASES`, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A runner with a fixed seed (independent of `PROPTEST_RNG_SEED`), no shrinking
/// persistence files, and `cases` cases.
pub fn runner(cases: u32) -> TestRunner {
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

/// The seed files of one corpus directory, sorted by name, as (name, bytes).
pub fn corpus(dir: &str) -> Vec<(String, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(dir);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", root.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "corpus {} is empty", root.display());
    out
}

/// Fails unless `message` is one non-empty line.
pub fn assert_one_line(message: &str, input: &str) {
    assert!(
        !message.trim().is_empty() && !message.contains('\n') && !message.contains('\r'),
        "error is not one line: {message:?}\ninput: {}",
        preview(input)
    );
}

/// The start of an input, for failure messages.
pub fn preview(input: &str) -> String {
    input.chars().take(400).collect()
}

/// The largest single allocation any test of this binary asked for.
static LARGEST: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Most bytes one allocation may ask for: the generated inputs are 10 MB strings, and
/// copies of them; a length taken from the input unchecked asks for far more.
pub const ALLOCATION_BOUND: usize = 512 << 20;

/// The system allocator, recording the largest request.
struct Recording;

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl std::alloc::GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        LARGEST.fetch_max(new, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { std::alloc::System.realloc(ptr, layout, new) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: as above.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Recording = Recording;

/// Fails if any allocation so far asked for more than [`ALLOCATION_BOUND`] bytes.
pub fn assert_allocations_bounded(what: &str) {
    let largest = LARGEST.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        largest <= ALLOCATION_BOUND,
        "{what}: an allocation asked for {largest} bytes (bound {ALLOCATION_BOUND})"
    );
}

#[test]
fn the_allocation_record_sees_large_requests() {
    let before = LARGEST.load(std::sync::atomic::Ordering::Relaxed);
    let v: Vec<u8> = Vec::with_capacity(before + 4096);
    assert!(LARGEST.load(std::sync::atomic::Ordering::Relaxed) >= v.capacity());
}
