//! `skylark`: run the server (`skylark [--config FILE]`) or validate rule files
//! (`skylark check-rules PATH...`).
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's start-up options: back the heap and jemalloc's own metadata with transparent
/// huge pages where the kernel allows them on request (`madvise` mode). Opening a large data
/// folder fills ~200 MB of fresh heap (sled's page table and snapshot); faulting that in 4 KiB
/// at a time was a third of start-up. `_RJEM_MALLOC_CONF` still overrides this
/// (`thp:default,metadata_thp:disabled` turns it off).
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8; 31] = b"thp:always,metadata_thp:always\0";

const USAGE: &str = "usage: skylark [serve] [--config FILE]\n       skylark check-rules PATH...\n       skylark sourcemaps upload DIR --service S --version V [--url http://host:12800] [--token T]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("check-rules") => check_rules(&args[1..]),
        Some("sourcemaps") => upload_sourcemaps(&args[1..]),
        Some("-h") | Some("--help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            let rest = if args.first().map(String::as_str) == Some("serve") {
                &args[1..]
            } else {
                &args[..]
            };
            match run(rest) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("skylark: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `skylark sourcemaps upload DIR ...`: one line per stored map, non-zero exit on a refusal.
fn upload_sourcemaps(args: &[String]) -> ExitCode {
    let result = (|| {
        if args.first().map(String::as_str) != Some("upload") {
            anyhow::bail!("unknown sourcemaps command\n{USAGE}");
        }
        let upload = skylark_server::sourcemap_cli::UploadArgs::parse(&args[1..])?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(skylark_server::sourcemap_cli::upload(&upload))
    })();
    match result {
        Ok(stored) => {
            for file in stored {
                println!("stored {file}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("skylark: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let mut config_path = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" => {
                config_path = Some(PathBuf::from(
                    it.next()
                        .ok_or_else(|| anyhow::anyhow!("--config needs a file"))?,
                ))
            }
            other => anyhow::bail!("unknown argument '{other}'\n{USAGE}"),
        }
    }
    let config = skylark_server::config::Config::load(config_path.as_deref())?;
    init_tracing(&config.core.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(skylark_server::serve(
        config,
        skylark_server::pipeline::system_clock(),
        shutdown_signal(),
    ));
    // A final persist cut short by the shutdown deadline may still be running on a blocking
    // thread; dropping the runtime would wait for it and break the 5 s promise. Exiting under
    // it is as safe as a crash: the write-ahead log still holds what it had not stored.
    runtime.shutdown_background();
    result
}

/// Logs to stderr, human-readable or JSON (`core.logFormat`, `SKYLARK_LOG_FORMAT`), filtered by
/// `SKYLARK_LOG` (default `info`).
fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SKYLARK_LOG")
        .unwrap_or_else(|_| "info".into());
    let json = format == "json";
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    // Test harnesses set this so a server whose parent died (stdin closed) stops by itself.
    let orphaned = async {
        if std::env::var("SKYLARK_STOP_ON_STDIN_EOF").is_ok_and(|v| v == "1") {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
                let _ = tx.send(());
            });
            let _ = rx.await;
        } else {
            std::future::pending::<()>().await
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {}, _ = orphaned => {} }
    tracing::info!("shutdown requested");
}

/// Validates each file, printing `OK file` or `file:line:col: problem`; fails if any failed.
fn check_rules(paths: &[String]) -> ExitCode {
    if paths.is_empty() {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let mut failed = false;
    for path in paths {
        match skylark_server::check_rule_file(std::path::Path::new(path)) {
            Ok(()) => println!("OK {path}"),
            Err(problem) => {
                failed = true;
                println!("{problem}");
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
