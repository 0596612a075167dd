//! `airlock serve`: the OCI registry over the store, and (read-write) the background ingest of
//! pushed blobs (issue 14): a push is acknowledged once its bytes are durable, and
//! `server.ingest_jobs` workers cut staged blobs into chunks meanwhile. A stop abandons the one in
//! progress (it stays staged) and the next start resumes. With `server.metrics_listen` the
//! Prometheus metrics are served on a listener of their own until the registry has stopped
//! (issue 15).

use std::{net::SocketAddr, num::NonZeroUsize, process::ExitCode};

use airlock_config::{Key, Origin};
use airlock_registry::{AppState, RegistryConfig};
use airlock_store::Access;
use anyhow::{Context as _, Result};

use crate::{context::Context, output::LogFormat};

/// Arguments of `airlock serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on [env: AIRLOCK_LISTEN; else `server.listen`; else 127.0.0.1:5000]
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,

    /// Serve pulls only; pushes and deletes are refused (for a site that only imports bundles)
    #[arg(long)]
    read_only: bool,

    /// Serve Prometheus metrics at http://ADDR/metrics, apart from the registry [env:
    /// AIRLOCK_METRICS_LISTEN; else `server.metrics_listen`; else none]
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
}

pub fn run(ctx: &mut Context, args: Args) -> Result<ExitCode> {
    if let Some(addr) = args.listen {
        ctx.config
            .override_value(
                Key::ServerListen,
                &addr.to_string(),
                Origin::CommandLine {
                    flag: "--listen".into(),
                },
            )
            .context("applying --listen")?;
    }
    if let Some(addr) = args.metrics_listen {
        ctx.config
            .override_value(
                Key::ServerMetricsListen,
                &addr.to_string(),
                Origin::CommandLine {
                    flag: "--metrics-listen".into(),
                },
            )
            .context("applying --metrics-listen")?;
    }
    let read_only = args.read_only || ctx.config.server.read_only;
    let access = if read_only {
        Access::ReadOnly
    } else {
        Access::ReadWrite
    };
    // Read-write opens create the store on first run; read-only needs an existing one.
    let store = ctx.open_store(access)?;
    let config = RegistryConfig {
        read_only,
        max_manifest_bytes: ctx.config.server.max_manifest_size.as_u64(),
        upload_expiry: ctx.config.server.upload_expiry,
    };
    let ingest = match access {
        Access::ReadWrite => {
            let jobs = usize::try_from(ctx.config.server.ingest_jobs)
                .ok()
                .and_then(NonZeroUsize::new)
                .unwrap_or(NonZeroUsize::MIN);
            Some(store.start_ingest(jobs).context("starting the ingest")?)
        }
        Access::ReadOnly => None,
    };
    let listen = ctx.config.server.listen;
    let metrics_listen = ctx.config.server.metrics_listen;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on(async move {
        let state = AppState::new(store, config).context("starting the registry")?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let local = listener.local_addr().context("reading the bound address")?;
        let metrics_listener = match metrics_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listening for metrics on {addr}"))?,
            ),
            None => None,
        };
        // The first line on stdout says where the registry is, for scripts and tests.
        println!(
            "airlock registry listening on http://{local}{}",
            if read_only { " (read-only)" } else { "" }
        );
        match ctx.log_format {
            // Nothing but log lines on stderr.
            LogFormat::Json => tracing::info!(store = %ctx.data.display(), "serving the store"),
            LogFormat::Text if !ctx.quiet => {
                eprintln!("store {}; stop with Ctrl-C", ctx.data.display());
            }
            LogFormat::Text => {}
        }
        // The metrics outlive the registry's drain and stop once it has stopped.
        let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics = metrics_listener.map(|l| {
            let stopped = async move {
                let _ = metrics_stopped.await;
            };
            tokio::spawn(airlock_registry::serve_metrics(
                l,
                state.metrics().clone(),
                stopped,
            ))
        });
        let shutdown = async {
            // Ctrl-C or SIGTERM (systemd, container runtimes) stop accepting and drain.
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term => {}
            }
        };
        let served = airlock_registry::serve(listener, state, shutdown)
            .await
            .context("serving");
        let _ = stop_metrics.send(());
        if let Some(task) = metrics {
            task.await
                .context("serving metrics")?
                .context("serving metrics")?;
        }
        served
    });
    // Nothing is half done at any point of an ingest; the one in progress rolls back.
    if let Some(ingest) = ingest {
        ingest.stop();
    }
    served?;
    Ok(ExitCode::SUCCESS)
}
