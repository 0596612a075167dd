//! `airlock key generate`: a key pair for signing bundles (`airlock export --sign`), in
//! minisign's format, so Debian's `minisign` verifies what airlock signs and a key made by
//! `minisign -G` signs with airlock too. Runs on its own: it never touches a store, so it is
//! not handed to a running server.

use std::{
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    process::ExitCode,
};

use airlock_bundle::{KeyPair, SecretKeyFile, SigningKey};
use anyhow::{Context as _, Result, bail};
use serde_json::json;

use crate::context::Context;

/// Arguments of `airlock key`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeyCommand {
    /// Write a new key pair: PREFIX.pub (give it to sites: airlock.toml [trust] keys) and
    /// PREFIX.key (the secret key for `airlock export --sign`, encrypted with a password
    /// asked on the terminal unless --no-password)
    Generate(GenerateArgs),
}

#[derive(Debug, clap::Args)]
struct GenerateArgs {
    /// Files are PREFIX.pub and PREFIX.key
    #[arg(long, value_name = "PREFIX", default_value = "airlock")]
    out: PathBuf,

    /// Read the secret key's password from standard input instead of asking on the terminal
    #[arg(long, conflicts_with = "no_password")]
    password_stdin: bool,

    /// Store the secret key unencrypted (protect the file yourself)
    #[arg(long)]
    no_password: bool,
}

impl Args {
    /// Paths taken from `cwd`.
    pub fn absolutize(&mut self, cwd: &Path) {
        let KeyCommand::Generate(g) = &mut self.command;
        g.out = crate::remote::absolute(cwd, &g.out);
    }
}

pub fn run(ctx: &Context, args: Args) -> Result<ExitCode> {
    let KeyCommand::Generate(args) = args.command;
    let with = |ext: &str| {
        let mut p = args.out.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p)
    };
    let (public, secret) = (with(".pub"), with(".key"));
    for p in [&public, &secret] {
        if p.exists() {
            bail!(
                "{} already exists: choose another --out PREFIX, or move the old key away",
                p.display()
            );
        }
    }
    let password = if args.no_password {
        None
    } else if args.password_stdin {
        let text = crate::output::read_all().context("reading the password from standard input")?;
        Some(text.trim_end_matches(['\r', '\n']).to_owned())
    } else if crate::output::interactive() {
        let first = crate::output::read_secret("Password for the new secret key: ")
            .context("reading the password")?;
        let again = crate::output::read_secret("The same password again: ")
            .context("reading the password")?;
        if first != again {
            bail!("the two passwords differ; nothing written");
        }
        Some(first)
    } else {
        bail!(
            "no terminal to ask for the secret key's password: pass --password-stdin (the \
             password on standard input) or --no-password (an unencrypted key)"
        );
    };
    if password.as_deref() == Some("") {
        bail!("an empty password: give one, or pass --no-password for an unencrypted key");
    }
    let pair = KeyPair::generate(password.as_deref())?;
    write_new(&secret, pair.secret.as_bytes(), 0o600)?;
    if let Err(e) = write_new(&public, pair.public.as_bytes(), 0o644) {
        let _ = std::fs::remove_file(&secret);
        return Err(e);
    }
    let inline = pair.public.lines().nth(1).unwrap_or("").to_owned();
    if ctx.json {
        crate::output::outln!(
            "{}",
            json!({
                "key_id": pair.key_id.to_string(),
                "public_key_file": public,
                "secret_key_file": secret,
                "public_key": inline,
                "encrypted": password.is_some(),
            })
        );
    } else if !ctx.quiet {
        crate::output::outln!("key {}:", pair.key_id);
        crate::output::outln!(
            "  {}  public key: list it in the site's airlock.toml [trust] keys (the file, or \
             the key line {inline})",
            public.display()
        );
        crate::output::outln!(
            "  {}  secret key{}: sign with `airlock export ... --sign {}`; keep it safe",
            secret.display(),
            if password.is_some() {
                ", encrypted with your password"
            } else {
                ", NOT encrypted"
            },
            secret.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a file that must not exist yet, with `mode`, synced, as `.partial` then renamed.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(file);
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// Reads and unlocks the secret key of `export --sign`: its password from standard input
/// (`--password-stdin`), else asked on the terminal when the key is encrypted.
pub fn signing_key(path: &Path, password_stdin: bool) -> Result<SigningKey> {
    let file = SecretKeyFile::read(path).context("reading the --sign key")?;
    if !file.is_encrypted() {
        return Ok(file.unlock(None)?);
    }
    let password = if password_stdin {
        let text = crate::output::read_all().context("reading the password from standard input")?;
        text.trim_end_matches(['\r', '\n']).to_owned()
    } else if crate::output::interactive() {
        crate::output::read_secret(&format!("Password of {}: ", path.display()))
            .context("reading the password")?
    } else {
        bail!(
            "{} is encrypted and there is no terminal to ask its password on: pass \
             --password-stdin (the password on standard input)",
            path.display()
        );
    };
    Ok(file.unlock(Some(&password))?)
}
