//! The `sluice` binary: parses the command line, sets up the process (allocator, open-files
//! limit, tracing, metrics recorder) and runs the broker library's `server::run` or
//! `sluice_admin::run`. The layout of the broker is described in `lib.rs`.

use clap::{Parser, Subcommand};
use sluice::log_levels::{ApplyFilter, LogLevels};
use sluice::{config, decode_guard, metrics, server};
use sluice_admin as admin;

#[global_allocator]
static ALLOCATOR: decode_guard::GuardedAllocator = decode_guard::GuardedAllocator;

/// Sluice: a Kafka-compatible message broker.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a node (with no flags: a one-node cluster on 127.0.0.1:9092).
    Serve(config::ServeArgs),
    /// Operate a running cluster (status, brokers, topics, groups, voters).
    Admin(admin::AdminArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Cmd::Admin(args)) => return run_admin(args),
        Some(Cmd::Serve(args)) => args,
        // `sluice` alone behaves like `sluice serve` with its defaults.
        None => match Cli::parse_from(["sluice", "serve"]).command {
            Some(Cmd::Serve(args)) => args,
            _ => anyhow::bail!("no command"),
        },
    };
    keep_freed_buffers();
    let log_levels = std::sync::Arc::new(init_tracing(args.log_json));
    raise_open_files_limit();
    let metrics = match metrics::install() {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed");
            None
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(server::run(args, metrics, log_levels));
    if let Err(e) = &result {
        tracing::error!(error = %e, "sluice failed");
    }
    result
}

/// Every fetch reads into fresh buffers of about a partition's fetch limit (RocksDB's
/// read-ahead buffer, then the response's records), and glibc hands allocations that large
/// to mmap, so each one was faulted in page by page, zeroed and unmapped again. From the
/// heap, and kept once freed, they are reused: broker CPU per 1.5 GB read 5.5-5.8 s ->
/// 2.3-2.8 s (`compat-tests/bench/consume-probe`; its PERF=1 profile showed the faults).
/// Four arenas of at most 64 MiB unused each bound what is kept.
fn keep_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}

/// RocksDB keeps a descriptor open per partition (its column family's directory) besides
/// its table files, so the common default soft limit of 1024 failed topic creation at about
/// a thousand partitions with "Too many open files". Like the JVM under Kafka, raise the
/// soft limit to the hard one.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed by pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    // An unlimited hard limit still stops at the kernel's nr_open.
    let most = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<libc::rlim_t>().ok())
        .map_or(limit.rlim_max, |n| n.min(limit.rlim_max));
    if limit.rlim_cur >= most {
        return;
    }
    let wanted = libc::rlimit {
        rlim_cur: most,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit only reads the struct passed by pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0 {
        tracing::info!(
            from = limit.rlim_cur,
            to = most,
            "raised the open files limit"
        );
    } else {
        tracing::warn!(
            open_files = limit.rlim_cur,
            "could not raise the open files limit: each partition holds a file open"
        );
    }
}

fn run_admin(args: admin::AdminArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .init();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(admin::run(args))
}

/// Info for Sluice; openraft's warnings, except that for each failed try to reach a peer
/// openraft logs three warnings beside its one error line, which is kept.
const DEFAULT_LOG_FILTER: &str =
    "info,openraft=warn,openraft::replication=error,openraft::engine::handler::replication_handler=error";

/// Installs the subscriber (`RUST_LOG`, else the default filter) and answers the node's log
/// levels, which change its filter in place.
fn init_tracing(json: bool) -> LogLevels {
    use tracing_subscriber::EnvFilter;
    let directives = std::env::var("RUST_LOG")
        .ok()
        .filter(|d| EnvFilter::try_new(d).is_ok())
        .unwrap_or_else(|| DEFAULT_LOG_FILTER.to_string());
    let filter = EnvFilter::new(&directives);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // The reload handle's type names the formatter, so each branch takes its own.
    macro_rules! install {
        ($builder:expr) => {{
            let builder = $builder.with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            let apply: ApplyFilter = Box::new(move |d: &str| {
                let filter = EnvFilter::try_new(d).map_err(|e| e.to_string())?;
                handle.reload(filter).map_err(|e| e.to_string())
            });
            apply
        }};
    }
    let apply = if json {
        install!(builder.json())
    } else {
        install!(builder)
    };
    LogLevels::new(&directives, Some(apply))
}
