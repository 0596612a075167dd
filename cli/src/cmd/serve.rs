//! `airlock serve`: the OCI registry over the store, over HTTP or HTTPS, with the accounts,
//! access rules and limits of `airlock.toml`; (read-write) the background ingest of pushed
//! blobs (issue 14): a push is acknowledged once its bytes are durable, and
//! `server.ingest_jobs` workers cut staged blobs into chunks meanwhile (a stop abandons the one
//! in progress, it stays staged, and the next start resumes); the socket other commands on
//! the data directory are handed to (`remote`, issue 15); and, with `server.metrics_listen`,
//! the Prometheus metrics on a listener of their own until the registry has stopped (issue 15).

use std::{net::SocketAddr, num::NonZeroUsize, path::PathBuf, process::ExitCode, sync::Arc};

use airlock_config::{Config, Key, Origin};
use airlock_registry::{
    AccessRule, Action, AppState, Auth, AuthSettings, Challenge, Limits, RegistryConfig, TlsFiles,
};
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

    /// Serve HTTPS with this certificate chain (PEM) [else `tls.cert`]; reloaded on SIGHUP
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM) [else `tls.key`]
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Serve Prometheus metrics at http://ADDR/metrics, apart from the registry [env:
    /// AIRLOCK_METRICS_LISTEN; else `server.metrics_listen`; else none]
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
}

pub fn run(ctx: &mut Context, args: Args) -> Result<ExitCode> {
    let flags = [
        (
            Key::ServerListen,
            args.listen.map(|a| a.to_string()),
            "--listen",
        ),
        (Key::TlsCert, path_text(&args.tls_cert), "--tls-cert"),
        (Key::TlsKey, path_text(&args.tls_key), "--tls-key"),
        (
            Key::ServerMetricsListen,
            args.metrics_listen.map(|a| a.to_string()),
            "--metrics-listen",
        ),
    ];
    for (key, value, flag) in flags {
        if let Some(value) = value {
            let origin = Origin::CommandLine { flag: flag.into() };
            ctx.config
                .override_value(key, &value, origin)
                .with_context(|| format!("applying {flag}"))?;
        }
    }
    ctx.config
        .validate()
        .context("checking the configuration")?;
    let read_only = args.read_only || ctx.config.server.read_only;
    let access = if read_only {
        Access::ReadOnly
    } else {
        Access::ReadWrite
    };
    // Read-write opens create the store on first run; read-only needs an existing one.
    let store = ctx.open_store(access)?;
    let config = registry_config(&ctx.config, read_only);
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
    let auth = Auth::load(&auth_settings(&ctx.config)?, listen, store.root())
        .context("setting up accounts and access")?;
    let tls = match (&ctx.config.tls.cert, &ctx.config.tls.key) {
        (Some(cert), Some(key)) => Some(Arc::new(
            TlsFiles::load(cert, key).context("loading the TLS certificate")?,
        )),
        _ => None,
    };
    let shutdown_timeout = config.limits.shutdown_timeout;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on(async move {
        let summary = auth.summary();
        let shared_store = store.clone();
        let state = AppState::with_auth(store, config, auth).context("starting the registry")?;
        // Other commands on this data directory are handed to this process (`remote`).
        let _socket = crate::remote::Listener::start(crate::remote::Shared {
            config: ctx.config.clone(),
            data: ctx.data.clone(),
            store: shared_store,
            metrics: state.metrics().clone(),
        })?;
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
        // The first line on stdout says where the registry is and who may do what, for people,
        // scripts and tests.
        crate::output::outln!(
            "airlock registry listening on {}://{local}{} with access: {summary}",
            if tls.is_some() { "https" } else { "http" },
            if read_only { " (read-only)" } else { "" }
        );
        match ctx.log_format {
            // Nothing but log lines on stderr.
            LogFormat::Json => tracing::info!(store = %ctx.data.display(), "serving the store"),
            LogFormat::Text if !ctx.quiet => {
                crate::output::errln!("store {}; stop with Ctrl-C", ctx.data.display());
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
        let served = match tls {
            Some(tls) => airlock_registry::serve_tls(listener, state, tls, shutdown()).await,
            None => airlock_registry::serve(listener, state, shutdown()).await,
        };
        let _ = stop_metrics.send(());
        if let Some(task) = metrics {
            task.await
                .context("serving metrics")?
                .context("serving metrics")?;
        }
        served.context("serving")
    });
    // Nothing is half done at any point of an ingest; the one in progress rolls back.
    if let Some(ingest) = ingest {
        ingest.stop();
    }
    served?;
    // Blocking work still running (a store call) gets the same deadline as connections.
    runtime.shutdown_timeout(shutdown_timeout);
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM (systemd, container runtimes): stop accepting and drain.
async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
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
}

fn path_text(path: &Option<PathBuf>) -> Option<String> {
    path.as_ref().map(|p| p.to_string_lossy().into_owned())
}

fn registry_config(config: &Config, read_only: bool) -> RegistryConfig {
    let l = &config.limits;
    let count = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
    RegistryConfig {
        read_only,
        max_manifest_bytes: config.server.max_manifest_size.as_u64(),
        upload_expiry: config.server.upload_expiry,
        limits: Limits {
            max_blob_bytes: l.max_blob_size.as_u64(),
            max_upload_sessions: count(l.max_upload_sessions),
            max_upload_sessions_per_client: count(l.max_upload_sessions_per_client),
            max_connections: count(l.max_connections),
            header_timeout: l.header_timeout,
            body_timeout: l.body_timeout,
            shutdown_timeout: l.shutdown_timeout,
        },
    }
}

fn auth_settings(config: &Config) -> Result<AuthSettings> {
    let rules = config
        .access
        .iter()
        .map(|rule| {
            let actions = rule
                .actions
                .iter()
                .map(|a| a.parse::<Action>().map_err(anyhow::Error::msg))
                .collect::<Result<Vec<_>>>()
                .with_context(|| format!("{}", rule.origin))?;
            Ok(AccessRule {
                repositories: rule.repositories.clone(),
                users: rule.users.clone(),
                groups: rule.groups.clone(),
                actions,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(AuthSettings {
        htpasswd: config.auth.htpasswd.clone(),
        groups: config.groups.clone(),
        rules,
        anonymous_pull: config.auth.anonymous_pull,
        anonymous_write: config.auth.anonymous_write,
        challenge: match config.auth.challenge.as_str() {
            "basic" => Challenge::Basic,
            _ => Challenge::Bearer,
        },
        token_lifetime: config.auth.token_lifetime,
    })
}
