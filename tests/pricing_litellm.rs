//! Importing the real LiteLLM price list (native only: it reads ../shared/data), checking it
//! against the built-in table, and measuring the import's time and peak heap.
//!
//! Figures: `cargo test --release --test pricing_litellm -- --nocapture`.
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use tokenmeter::pricing::{ModelPrice, PriceTable};

/// Counts live and peak heap bytes so the import's memory can be reported.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Tests run on several threads; every test holds this lock so the measurement sees only the
/// import's allocations.
static MEASURE: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    MEASURE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[allow(unsafe_code)]
// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/litellm_model_prices.json");

fn read() -> Vec<u8> {
    std::fs::read(PATH).expect("the shared LiteLLM price list")
}

fn import() -> PriceTable {
    PriceTable::import_litellm(&read()).unwrap()
}

#[test]
fn imports_the_real_file_and_reports_time_and_peak_memory() {
    let _guard = serial();
    let bytes = read();
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let start = Instant::now();
    let table = PriceTable::import_litellm(&bytes).unwrap();
    let elapsed = start.elapsed();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    let retained = LIVE.load(Ordering::Relaxed).saturating_sub(base);
    println!(
        "litellm import: {} bytes -> {} entries in {:.2} ms; peak heap {} KiB, retained {} KiB",
        bytes.len(),
        table.len(),
        elapsed.as_secs_f64() * 1000.0,
        peak / 1024,
        retained / 1024
    );
    // The file has 4,878 entries; those without per-token prices (images, audio, video, the
    // sample_spec) are skipped.
    assert!(table.len() > 3_500 && table.len() < 4_878, "{}", table.len());
    assert_eq!(table.version(), "litellm");
}

#[test]
fn agrees_with_the_builtin_list_where_both_price_a_model() {
    let _guard = serial();
    let imported = import();
    let builtin = PriceTable::builtin();
    let std_rates = |t: &PriceTable, m: &str| {
        let p: &ModelPrice = &t.resolve_pricing(m).unwrap().1.standard;
        (p.input, p.cached_input, p.output)
    };
    for model in [
        "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3", "o4-mini", "gpt-5", "gpt-5-mini",
        "gpt-5-nano", "gpt-5.1", "text-embedding-3-small", "text-embedding-3-large", "claude-opus-4-5",
        "claude-sonnet-4-5", "claude-haiku-4-5", "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite",
        "gpt-4o-2024-05-13",
    ] {
        assert_eq!(imported.resolve(model).unwrap().0, model, "exact LiteLLM key");
        let want = std_rates(&builtin, model);
        let got = std_rates(&imported, model);
        // gpt-4o-2024-05-13 has no cached price in LiteLLM either: cached defaults to input.
        assert_eq!(got, want, "{model}");
    }
    for model in ["claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5"] {
        let get = |t: &PriceTable| {
            let p = &t.resolve_pricing(model).unwrap().1.standard;
            (p.cache_write_5m, p.cache_write_1h)
        };
        assert_eq!(get(&imported), get(&builtin), "{model} cache writes");
    }
    for model in ["gpt-4o", "gpt-4.1", "gpt-5", "o3", "o4-mini", "gpt-4o-mini"] {
        let get = |t: &PriceTable| t.resolve_pricing(model).unwrap().1.priority.clone().map(|p| (p.input, p.cached_input, p.output));
        assert_eq!(get(&imported), get(&builtin), "{model} priority");
    }
    let long = |t: &PriceTable, m: &str| t.resolve_pricing(m).unwrap().1.long_context.clone().map(|l| (l.above_input_tokens, l.price.input, l.price.cached_input, l.price.output));
    assert_eq!(long(&imported, "gemini-2.5-pro"), long(&builtin, "gemini-2.5-pro"));
    // Bedrock's entry lists Sonnet 4's long-context tier; its 1h write is derived from the ratio.
    let bedrock = imported.resolve_pricing("anthropic.claude-sonnet-4-20250514-v1:0").unwrap().1;
    let builtin_sonnet = builtin.resolve_pricing("claude-sonnet-4").unwrap().1;
    assert_eq!(bedrock.long_context.as_ref().map(|l| (l.price.input, l.price.cached_input, l.price.cache_write_5m, l.price.output)),
        builtin_sonnet.long_context.as_ref().map(|l| (l.price.input, l.price.cached_input, l.price.cache_write_5m, l.price.output)));
    // Sub-pico list prices round half up once: 1.41953125e-07 USD = 141,953.125 pico.
    assert_eq!(imported.resolve("morph/morph-dsv4flash").unwrap().1.input, 141_953);
}

#[test]
fn merged_over_builtin_the_import_wins_and_builtin_fills_gaps() {
    let _guard = serial();
    let mut table = PriceTable::builtin();
    table.merge(import());
    assert_eq!(table.version(), "builtin-2026-11-01+litellm");
    // LiteLLM has the exact Bedrock id; the built-in table prices it via resolution.
    assert_eq!(table.resolve("anthropic.claude-sonnet-4-20250514-v1:0").unwrap().0, "anthropic.claude-sonnet-4-20250514-v1:0");
    // LiteLLM has no claude-sonnet-4 key: the built-in entry still prices its dated id.
    assert_eq!(table.resolve("claude-sonnet-4-20250514").unwrap().0, "claude-sonnet-4");
    assert!(table.resolve("gpt-4o-mini").is_some());
}

#[test]
fn resolution_is_cheap_and_allocation_free() {
    let _guard = serial();
    let mut merged = PriceTable::builtin();
    merged.merge(import());
    let ids = [
        "gpt-4o-2024-08-06",
        "gpt-4o-mini",
        "claude-sonnet-4-20250514",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "publishers/anthropic/models/claude-haiku-4-5@20251001",
        "models/gemini-2.5-pro",
        "some-unknown-model-2025-01-01",
    ];
    for (label, table) in [("builtin", PriceTable::builtin()), ("builtin+litellm", merged)] {
        let rounds: u32 = 20_000;
        let allocated_before = LIVE.load(Ordering::Relaxed);
        let peak_before = PEAK.load(Ordering::Relaxed);
        PEAK.store(allocated_before, Ordering::Relaxed);
        let start = Instant::now();
        let mut hits = 0u64;
        for _ in 0..rounds {
            for id in ids {
                hits += u64::from(table.resolve(std::hint::black_box(id)).is_some());
            }
        }
        let elapsed = start.elapsed();
        assert_eq!(PEAK.load(Ordering::Relaxed), allocated_before, "resolution allocated");
        PEAK.store(peak_before, Ordering::Relaxed);
        assert_eq!(hits, u64::from(rounds) * 6);
        let per = elapsed.as_nanos() as f64 / f64::from(rounds * ids.len() as u32);
        println!("resolve over {label} ({} names): {per:.0} ns per id", table.len());
    }
}
