//! The `airlock` command: a local OCI registry and artifact store with chunk-level dedup, for
//! carrying container applications into air-gapped sites.
//!
//! Exit codes: 0 ok, 1 a check found problems, 2 error (the cause chain is printed).

mod cmd;
mod context;
mod output;
mod remote;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Parser, Subcommand};

use crate::context::Context;

/// airlock: a local OCI registry and artifact store with chunk-level dedup, for air-gapped sites.
#[derive(Debug, Parser)]
#[command(name = "airlock", version, about, long_about = None)]
struct Cli {
    /// Store directory [env: AIRLOCK_DATA; else `store.data` in the config file; else ./airlock-data]
    #[arg(long, global = true, value_name = "DIR")]
    data: Option<PathBuf>,

    /// Config file [default: ./airlock.toml if present, else built-in defaults]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Machine-readable JSON output
    #[arg(long, global = true)]
    json: bool,

    /// Print only errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,

    /// More detail (repeat for debug logs)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Log lines on stderr as text or JSON objects, one per line [env: AIRLOCK_LOG_FORMAT; else
    /// `server.log_format`; else text]
    #[arg(long, global = true, value_name = "FORMAT")]
    log_format: Option<output::LogFormat>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the OCI registry (pull, push, referrers; a containerd mirror with ?ns=)
    Serve(cmd::serve::Args),
    /// Add images: docker-archive:FILE, oci:DIR[:REF], oci-archive:FILE[:REF], docker://HOST/REPO:TAG, or -f app.yaml
    Add(cmd::add::Args),
    /// List repositories and their tags with the manifests they point at
    Ls(cmd::ls::Args),
    /// Report logical bytes against stored bytes, and how blobs were cut
    Du(cmd::du::Args),
    /// Preview an upgrade from REF_A to REF_B: images added, removed, changed, their layers, and what a delta would ship
    Diff(cmd::diff::Args),
    /// Check every pack, chunk, recipe and blob digest; exit 1 if anything is wrong
    Verify(cmd::verify::Args),
    /// Remove unreachable blobs and chunks, and reclaim pack space
    Gc(cmd::gc::Args),
    /// Write images or application versions as a bundle of volumes for removable media (full, or a delta with --since/--have)
    Export(cmd::export::Args),
    /// Import bundle volumes, in any order, resumable; exit 1 while volumes are missing
    Import(cmd::import::Args),
    /// Write what this store holds, for a vendor's `export --have`
    Inventory(cmd::inventory::Args),
    /// Keys for signed bundles: `airlock key generate` writes a minisign key pair
    Key(cmd::key::Args),
    /// Applications: versions and the current one; `history`, `use`, `rollback`
    Apps(cmd::apps::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logging starts once the configuration says which format, unless it cannot be read.
    let mut ctx = match Context::new(
        cli.data,
        cli.config.as_deref(),
        cli.json,
        cli.quiet,
        cli.verbose,
    ) {
        Ok(c) => c,
        Err(e) => {
            let format = cli.log_format.unwrap_or_default();
            output::init_logging(cli.quiet, cli.verbose, format);
            return output::fail(&e, cli.json);
        }
    };
    let format = cli
        .log_format
        .unwrap_or_else(|| output::LogFormat::from_config(ctx.config.server.log_format));
    output::init_logging(cli.quiet, cli.verbose, format);
    ctx.log_format = format;
    // A running `airlock serve` owns the store: it runs the command (see `remote`).
    // `key` needs no store: it never waits for, nor goes to, a server.
    if !matches!(cli.command, Command::Serve(_) | Command::Key(_))
        && let Some(code) = remote::hand_over(&ctx.data, std::env::args_os().skip(1).collect())
    {
        return code;
    }
    run(&mut ctx, cli.command)
}

fn run(ctx: &mut Context, command: Command) -> ExitCode {
    let result = match command {
        Command::Serve(args) => cmd::serve::run(ctx, args),
        Command::Add(args) => cmd::add::run(ctx, args),
        Command::Ls(args) => cmd::ls::run(ctx, args),
        Command::Du(args) => cmd::du::run(ctx, args),
        Command::Diff(args) => cmd::diff::run(ctx, args),
        Command::Verify(args) => cmd::verify::run(ctx, args),
        Command::Gc(args) => cmd::gc::run(ctx, args),
        Command::Export(args) => cmd::export::run(ctx, args),
        Command::Import(args) => cmd::import::run(ctx, args),
        Command::Inventory(args) => cmd::inventory::run(ctx, args),
        Command::Key(args) => cmd::key::run(ctx, args),
        Command::Apps(args) => cmd::apps::run(ctx, args),
    };
    match result {
        Ok(code) => code,
        Err(e) => output::fail(&e, ctx.json),
    }
}

/// Runs a client's command in the server (see `remote`), with the server's configuration and
/// store; relative paths are the client's, from `cwd`. Returns the exit code.
fn run_in_server(args: &[String], cwd: &Path, shared: &remote::Shared, user: String) -> u8 {
    let cli = match Cli::try_parse_from(
        std::iter::once("airlock").chain(args.iter().map(String::as_str)),
    ) {
        Ok(c) => c,
        Err(e) => {
            // The client parsed the same arguments already; only a bug gets here.
            output::errln!("{}", e.render());
            return output::EXIT_ERROR;
        }
    };
    let mut command = cli.command;
    match &mut command {
        Command::Serve(_) => {
            output::errln!("error: airlock serve is already running on this store");
            return output::EXIT_ERROR;
        }
        Command::Add(a) => a.absolutize(cwd),
        Command::Export(a) => a.absolutize(cwd),
        Command::Import(a) => a.absolutize(cwd),
        Command::Inventory(a) => a.absolutize(cwd),
        Command::Key(a) => a.absolutize(cwd),
        Command::Ls(_)
        | Command::Du(_)
        | Command::Diff(_)
        | Command::Verify(_)
        | Command::Gc(_)
        | Command::Apps(_) => {}
    }
    let mut ctx = Context::in_server(shared, cli.json, cli.quiet, cli.verbose, user);
    remote::exit_number(run(&mut ctx, command))
}
