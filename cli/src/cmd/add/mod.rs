//! `airlock add`: images from docker save archives, OCI layouts and archives, upstream
//! registries, or an app file listing them.

use std::{path::PathBuf, process::ExitCode};

use airlock_store::Access;
use anyhow::{Context as _, Result, bail};

use airlock_ingest::{
    AddOptions, Compression, Credentials, ManifestFormat, Source, Untagged, UpstreamOptions,
    add_app, plan_source, store_and_commit,
};

use self::progress::{Mode, Progress};
use crate::{cmd::names, context::Context};

mod progress;

/// The manifest made for docker-archive images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// OCI image manifest, `application/vnd.oci.image.layer.v1.tar` layers.
    Oci,
    /// Docker schema 2, `application/vnd.docker.image.rootfs.diff.tar` layers.
    Docker,
}

/// Layer compression for docker-archive images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Compress {
    /// Keep layers uncompressed (their digest is their diff id).
    None,
    /// airlock's deterministic gzip encoding (flate2 level 6, fixed header), rebuilt exactly
    Gzip,
}

/// Arguments of `airlock add`.
#[derive(Debug, clap::Args)]
#[command(after_help = "SOURCE is one of:\n  \
    docker-archive:FILE        a `docker save` archive (one or many images)\n  \
    oci:DIR[:REF]              an OCI image layout directory, all images or the one named REF\n  \
    oci-archive:FILE[:REF]     a tar of an OCI image layout\n  \
    docker://HOST/REPO:TAG     an upstream registry (or HOST/REPO@DIGEST)")]
pub struct Args {
    /// Sources to add
    #[arg(value_name = "SOURCE", required_unless_present = "file")]
    sources: Vec<String>,

    /// An app file (YAML): name, version and the images that make up one application version
    #[arg(short = 'f', long = "file", value_name = "APP.yaml", conflicts_with_all = ["sources", "target"])]
    file: Option<PathBuf>,

    /// Store the image as REPO[:TAG] instead of the name it comes with (in the repository a pull
    /// of that name reads, else under the name as given)
    #[arg(long = "as", value_name = "REPO[:TAG]")]
    target: Option<String>,

    /// Manifest made for docker-archive images
    #[arg(long, value_enum, default_value = "oci")]
    format: Format,

    /// Layer compression for docker-archive images
    #[arg(long, value_enum, default_value = "none")]
    compress: Compress,

    /// Keep only this platform of multi-platform indexes (repeatable): os/arch[/variant]; the
    /// index is kept as published, the other platforms' manifests are left out
    #[arg(long = "platform", value_name = "OS/ARCH[/VARIANT]")]
    platforms: Vec<String>,

    /// Reach upstream registries over plain HTTP
    #[arg(long)]
    insecure: bool,

    /// User name for the upstream registry (password from --password-stdin)
    #[arg(long, requires = "password_stdin")]
    username: Option<String>,

    /// Read the upstream registry's password from standard input
    #[arg(long, requires = "username")]
    password_stdin: bool,

    /// Blobs stored at once
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=32))]
    jobs: u16,
}

impl Args {
    /// Paths taken from `cwd` (a command run in the server for a client, see `remote`): the
    /// app file, and the file or directory of each local source.
    pub fn absolutize(&mut self, cwd: &std::path::Path) {
        if let Some(f) = &mut self.file {
            *f = crate::remote::absolute(cwd, f);
        }
        for source in &mut self.sources {
            for prefix in ["docker-archive:", "oci-archive:", "oci:"] {
                if let Some(rest) = source.strip_prefix(prefix) {
                    let path = crate::remote::absolute(cwd, std::path::Path::new(rest));
                    *source = format!("{prefix}{}", path.display());
                    break;
                }
            }
        }
    }
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let credentials = match args.username {
        Some(username) => {
            let password =
                crate::output::read_all().context("reading the password from standard input")?;
            Some(Credentials {
                username,
                password: password.trim_end_matches(['\r', '\n']).to_owned(),
            })
        }
        None => None,
    };
    let platforms = crate::cmd::names::platforms(&args.platforms)?;
    let opts = AddOptions {
        format: match args.format {
            Format::Oci => ManifestFormat::Oci,
            Format::Docker => ManifestFormat::Docker,
        },
        compression: match args.compress {
            Compress::None => Compression::None,
            Compress::Gzip => Compression::Gzip,
        },
        upstream: UpstreamOptions {
            insecure: args.insecure,
            credentials,
        },
        platforms,
        jobs: usize::from(args.jobs),
        user: ctx.user.clone(),
    };
    let mode = if ctx.json {
        Mode::Json
    } else if ctx.quiet {
        Mode::Quiet
    } else {
        Mode::Human
    };
    let progress = Progress::new(mode);
    let sources = args
        .sources
        .iter()
        .map(|s| Source::parse(s, None))
        .collect::<Result<Vec<_>, _>>()?;
    let store = ctx.open_store(Access::ReadWrite)?;
    let target = args
        .target
        .as_deref()
        .map(|t| names::target(&store, t))
        .transpose()?;
    if let Some(file) = &args.file {
        add_app(&store, file, &opts, &progress)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut plans = Vec::new();
    for source in &sources {
        plans.extend(plan_source(
            source,
            target.as_ref(),
            &opts,
            Untagged::Refuse,
            &progress,
        )?);
    }
    if target.as_ref().is_some_and(|t| t.tag.is_some()) && plans.len() > 1 {
        bail!(
            "--as names one image, but the sources hold {}: add them one at a time",
            plans.len()
        );
    }
    store_and_commit(&store, &plans, &opts, &progress)?;
    Ok(ExitCode::SUCCESS)
}
