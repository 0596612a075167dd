//! `airlock serve`: the OCI registry over the store, and (read-write) the background ingest of
//! pushed blobs (issue 14): a push is acknowledged once its bytes are durable, and
//! `server.ingest_jobs` workers cut staged blobs into chunks meanwhile. A stop abandons the one in
//! progress (it stays staged) and the next start resumes.

use std::{net::SocketAddr, num::NonZeroUsize, process::ExitCode};

use airlock_config::{Key, Origin};
use airlock_registry::{AppState, RegistryConfig};
use airlock_store::Access;
use anyhow::{Context as _, Result};

use crate::context::Context;

/// Arguments of `airlock serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on [env: AIRLOCK_LISTEN; else `server.listen`; else 127.0.0.1:5000]
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,

    /// Serve pulls only; pushes and deletes are refused (for a site that only imports bundles)
    #[arg(long)]
    read_only: bool,
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on(async move {
        // Other commands on this data directory are handed to this process (`remote`).
        let _socket = crate::remote::Listener::start(crate::remote::Shared {
            config: ctx.config.clone(),
            data: ctx.data.clone(),
            store: store.clone(),
        })?;
        let state = AppState::new(store, config).context("starting the registry")?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let local = listener.local_addr().context("reading the bound address")?;
        // The first line on stdout says where the registry is, for scripts and tests.
        crate::output::outln!(
            "airlock registry listening on http://{local}{}",
            if read_only { " (read-only)" } else { "" }
        );
        if !ctx.quiet {
            crate::output::errln!("store {}; stop with Ctrl-C", ctx.data.display());
        }
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
        airlock_registry::serve(listener, state, shutdown)
            .await
            .context("serving")?;
        Ok::<(), anyhow::Error>(())
    });
    // Nothing is half done at any point of an ingest; the one in progress rolls back.
    if let Some(ingest) = ingest {
        ingest.stop();
    }
    served?;
    Ok(ExitCode::SUCCESS)
}
