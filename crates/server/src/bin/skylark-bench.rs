//! `make bench`: OTLP/HTTP protobuf ingest through the whole path (receiver → MAL → storage)
//! against the decode-only rate of the same bodies, measured in one run, plus the server's RSS.
//!
//! usage: skylark-bench --server PATH --fixtures DIR [--seconds N] [--concurrency N]
use anyhow::{bail, Context, Result};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    server: PathBuf,
    fixtures: PathBuf,
    seconds: u64,
    concurrency: usize,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        server: "target/release/skylark".into(),
        fixtures: "../shared/fixtures/sdk".into(),
        seconds: 10,
        concurrency: 8,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--server" => a.server = v.into(),
            "--fixtures" => a.fixtures = v.into(),
            "--seconds" => a.seconds = v.parse()?,
            "--concurrency" => a.concurrency = v.parse()?,
            _ => bail!("unknown argument {k}"),
        }
    }
    Ok(a)
}

fn points(req: &ExportMetricsServiceRequest) -> u64 {
    req.resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Sum(g)) => g.data_points.len(),
            Some(Data::Histogram(g)) => g.data_points.len(),
            Some(Data::ExponentialHistogram(g)) => g.data_points.len(),
            Some(Data::Summary(g)) => g.data_points.len(),
            None => 0,
        })
        .sum::<usize>() as u64
}

/// The protobuf metric bodies, re-timed so their points are one minute old.
fn load_bodies(dir: &Path) -> Result<Vec<(Vec<u8>, u64)>> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).with_context(|| {
            format!(
                "{} has no manifest.json (make bench needs ../shared/fixtures/sdk)",
                dir.display()
            )
        })?)?;
    let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64 - 60_000_000_000;
    let mut out = Vec::new();
    for f in manifest["files"].as_array().context("manifest files")? {
        if f["path"] != "/v1/metrics" || f["encoding"] != "proto" {
            continue;
        }
        let body = std::fs::read(dir.join(f["file"].as_str().unwrap_or_default()))?;
        let mut req = ExportMetricsServiceRequest::decode(body.as_slice())?;
        let mut max = 0;
        for m in req
            .resource_metrics
            .iter_mut()
            .flat_map(|r| &mut r.scope_metrics)
            .flat_map(|s| &mut s.metrics)
        {
            match &mut m.data {
                Some(Data::Gauge(g)) => g
                    .data_points
                    .iter()
                    .for_each(|p| max = max.max(p.time_unix_nano)),
                Some(Data::Histogram(g)) => g
                    .data_points
                    .iter()
                    .for_each(|p| max = max.max(p.time_unix_nano)),
                _ => {}
            }
        }
        let shift = now_ns.saturating_sub(max);
        for m in req
            .resource_metrics
            .iter_mut()
            .flat_map(|r| &mut r.scope_metrics)
            .flat_map(|s| &mut s.metrics)
        {
            match &mut m.data {
                Some(Data::Gauge(g)) => g
                    .data_points
                    .iter_mut()
                    .for_each(|p| p.time_unix_nano += shift),
                Some(Data::Histogram(g)) => g
                    .data_points
                    .iter_mut()
                    .for_each(|p| p.time_unix_nano += shift),
                _ => {}
            }
        }
        let n = points(&req);
        out.push((req.encode_to_vec(), n));
    }
    if out.is_empty() {
        bail!("no protobuf /v1/metrics fixtures in {}", dir.display());
    }
    Ok(out)
}

/// Requests/s and points/s through decode, the shipped rules and sled, without HTTP.
fn in_process(bodies: &[(Vec<u8>, u64)]) -> Result<(f64, f64)> {
    use skylark_core::IngestSink;
    let config = skylark_server::config::Config::load(None)?;
    let dir = tempfile::tempdir()?;
    let storage: Arc<dyn skylark_storage::Storage> = Arc::new(skylark_storage::SledStorage::open(
        skylark_storage::SledConfig::new(dir.path().join("db")),
    )?);
    let pipeline = skylark_server::pipeline::Pipeline::new(
        skylark_server::load_rules(&config)?,
        storage.clone(),
        config.core.metrics_data_ttl,
        config.core.record_data_ttl,
        skylark_server::pipeline::system_clock(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let start = Instant::now();
    let (mut reqs, mut pts) = (0u64, 0u64);
    while start.elapsed() < Duration::from_secs(3) {
        for (b, n) in bodies {
            let batch = skylark_receiver::decode_metrics("application/x-protobuf", b)?;
            rt.block_on(pipeline.ingest_metrics(batch))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            reqs += 1;
            pts += n;
        }
        storage.flush()?;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((reqs as f64 / secs, pts as f64 / secs))
}

fn rss_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let bodies = load_bodies(&args.fixtures)?;
    let total_points: u64 = bodies.iter().map(|(_, n)| n).sum();
    let total_bytes: usize = bodies.iter().map(|(b, _)| b.len()).sum();
    println!(
        "bodies: {} protobuf fixtures, {} data points, {} bytes",
        bodies.len(),
        total_points,
        total_bytes
    );

    // Decode only: the receiver's own decode + sample conversion, one thread.
    let start = Instant::now();
    let (mut reqs, mut pts) = (0u64, 0u64);
    while start.elapsed() < Duration::from_secs(3) {
        for (b, n) in &bodies {
            let batch = skylark_receiver::decode_metrics("application/x-protobuf", b)?;
            std::hint::black_box(&batch);
            reqs += 1;
            pts += n;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let (decode_rps, decode_pps) = (reqs as f64 / secs, pts as f64 / secs);

    // Decode + rules + storage in process (no HTTP), one thread: where the rest of the time goes.
    let (inproc_rps, inproc_pps) = in_process(&bodies)?;

    // The whole path against the release server.
    let data = tempfile::tempdir()?;
    let (rest, grpc) = (free_port()?, free_port()?);
    let mut child = Command::new(&args.server)
        .env("SW_CORE_REST_HOST", "127.0.0.1")
        .env("SW_CORE_REST_PORT", rest.to_string())
        .env("SW_CORE_GRPC_HOST", "127.0.0.1")
        .env("SW_CORE_GRPC_PORT", grpc.to_string())
        .env("SW_STORAGE_SLED_PATH", data.path().join("db"))
        .env("SKYLARK_STOP_ON_STDIN_EOF", "1")
        .env("SKYLARK_LOG", "warn")
        .stdin(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", args.server.display()))?;
    let pid = child.id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{rest}/v1/metrics");
        let ready = Instant::now();
        loop {
            let probe = client
                .post(format!("http://127.0.0.1:{rest}/graphql"))
                .json(&serde_json::json!({"query": "{ version }"}))
                .send()
                .await;
            if probe.is_ok() {
                break;
            }
            if ready.elapsed() > Duration::from_secs(30) {
                bail!("server did not start");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle_rss = rss_kb(pid, "VmRSS:");
        let bodies = Arc::new(bodies);
        let (ok, failed, pts) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let deadline = Instant::now() + Duration::from_secs(args.seconds);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..args.concurrency {
            let (client, url, bodies, ok, failed, pts) = (
                client.clone(),
                url.clone(),
                bodies.clone(),
                ok.clone(),
                failed.clone(),
                pts.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut i = w;
                while Instant::now() < deadline {
                    let (b, n) = &bodies[i % bodies.len()];
                    i += 1;
                    let r = client
                        .post(&url)
                        .header("Content-Type", "application/x-protobuf")
                        .body(b.clone())
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().is_success() => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            pts.fetch_add(*n, Ordering::Relaxed);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        for t in tasks {
            t.await?;
        }
        let secs = start.elapsed().as_secs_f64();
        Ok((
            idle_rss,
            ok.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
            pts.load(Ordering::Relaxed),
            secs,
        ))
    });
    let peak_rss = rss_kb(pid, "VmHWM:");
    let _ = child.kill();
    let _ = child.wait();
    let (idle_rss, ok, failed, e2e_pts, secs) = result?;
    let (e2e_rps, e2e_pps) = (ok as f64 / secs, e2e_pts as f64 / secs);
    println!();
    println!("| measure | requests/s | data points/s |");
    println!("|---|---|---|");
    println!("| decode only (1 thread, receiver decode + sample conversion) | {decode_rps:.0} | {decode_pps:.0} |");
    println!("| in process (decode → MAL → storage, 1 thread, no HTTP) | {inproc_rps:.0} | {inproc_pps:.0} |");
    println!("| end to end (OTLP/HTTP protobuf → MAL → storage, {} clients) | {e2e_rps:.0} | {e2e_pps:.0} |", args.concurrency);
    println!();
    println!(
        "ratio end-to-end / decode-only (data points/s): {:.3}",
        e2e_pps / decode_pps
    );
    println!("requests: {ok} ok, {failed} failed in {secs:.1} s");
    println!(
        "server RSS: idle {:.1} MB, peak {:.1} MB",
        idle_rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0
    );
    Ok(())
}
