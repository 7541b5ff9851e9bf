//! The metrics write path after decoding (rules → aggregation into pending rows), a fixed number
//! of times over the SDK fixtures, for `perf stat` / `perf record`: instructions per request do
//! not drift with a busy neighbour the way the timed stages of `skylark-bench` do.
//!
//! `cargo run --release -p skylark-bench --example metrics_path -- ../shared/fixtures/sdk 2000`
use anyhow::{Context, Result};
use skylark_core::MetricBatch;
use std::sync::Arc;

// The server's allocator: allocation is a good part of this path.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .context("usage: metrics_path FIXTURE_DIR [ROUNDS]")?;
    let rounds: u64 = args.next().map_or(Ok(1000), |r| r.parse())?;
    let mut batches: Vec<MetricBatch> = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with("_metrics.json"))
        .collect();
    paths.sort();
    for path in &paths {
        let body = std::fs::read(path)?;
        batches.push(skylark_receiver::decode_metrics("application/json", &body)?);
    }
    // "Now" just after the newest sample, so no sample is too old or too far ahead.
    let newest = batches
        .iter()
        .flat_map(|b| &b.resources)
        .flat_map(|r| r.values())
        .flat_map(|f| &f.samples)
        .map(|s| s.timestamp_ms)
        .max()
        .context("no metrics fixtures")?;
    let now_ms = newest + 60_000;
    let config = skylark_server::config::Config::load(None)?;
    let storage: Arc<dyn skylark_storage::Storage> = Arc::new(skylark_storage::MemStorage::new());
    let pipeline = skylark_server::pipeline::Pipeline::new(
        skylark_server::load_rules(&config)?,
        storage.clone(),
        config.core.metrics_data_ttl,
        config.core.record_data_ttl,
        Arc::new(move || now_ms),
    );
    let start = std::time::Instant::now();
    let mut requests = 0u64;
    for _ in 0..rounds {
        for batch in &batches {
            let (_, effects) = pipeline.prepare_metrics(batch.clone(), now_ms);
            storage.write_metrics(effects.emissions)?;
            storage.write_traffic(effects.traffic, now_ms)?;
            requests += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{requests} requests in {secs:.2} s: {:.1} µs per request",
        secs * 1e6 / requests as f64
    );
    Ok(())
}
