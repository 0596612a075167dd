//! Commands while `airlock serve` runs (issue 15): the running server owns the store (one
//! process opens a store at a time), so every other command hands its work to the server over
//! a socket in the data directory, `airlock.sock`, and the server runs it in-process against
//! the store it has open, with the same output, bars, prompts, `--json` and exit codes.
//!
//! The client ([`hand_over`]) connects, sends one JSON line (its version, arguments, working
//! directory, and whether its stdin and stderr are terminals), then copies frames to its
//! stdout and stderr and answers requests for input, until an exit frame (see `output` for the
//! frames). Without a server (no socket, or nobody listening on it) the command opens the
//! store itself, as before.
//!
//! The server ([`Listener`]) creates the socket owner-only (0600), accepts only clients running
//! as its own user or root (SO_PEERCRED), and runs each command on a thread of its own with
//! the server's configuration; relative paths are taken from the client's directory. A client
//! that goes away (Ctrl-C) does not stop the command: the server finishes it (an import or a GC
//! leaves nothing half done either way) and logs how it ended.

use std::{
    ffi::OsString,
    io::{self, IsTerminal, Read, Write},
    os::unix::{fs::MetadataExt, fs::PermissionsExt, net::UnixStream},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
};

use airlock_config::Config;
use airlock_store::Store;
use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use crate::output::{
    self, MAX_FRAME_BYTES, Remote, TAG_EXIT, TAG_INPUT, TAG_READ_ALL, TAG_READ_LINE,
    TAG_READ_SECRET, TAG_STDERR, TAG_STDOUT, errln,
};

/// The socket's name in the data directory.
pub const SOCKET_NAME: &str = "airlock.sock";

/// Largest request line a server reads.
const MAX_REQUEST_BYTES: u64 = 1024 * 1024;

/// What a client asks the server to run.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    /// The client's airlock version: a server of another version refuses (its commands and
    /// output may differ).
    version: String,
    /// The arguments after the program name.
    args: Vec<String>,
    /// The client's working directory, for relative paths.
    cwd: PathBuf,
    stdin_tty: bool,
    stderr_tty: bool,
    width: u16,
    /// The client's OS user (recorded in application histories); older clients send none.
    #[serde(default)]
    user: Option<String>,
}

/// The socket of the store at `data`.
pub fn socket_path(data: &Path) -> PathBuf {
    data.join(SOCKET_NAME)
}

/// Runs this invocation in the server holding the store at `data`, if one listens there;
/// `None` when none does (the caller opens the store itself).
pub fn hand_over(data: &Path, args: Vec<OsString>) -> Option<ExitCode> {
    let path = socket_path(data);
    let stream = UnixStream::connect(&path).ok()?;
    Some(match client(stream, args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "error: {:#}",
                e.context(format!(
                    "running the command in the airlock serve that has the store open (socket {})",
                    path.display()
                ))
            );
            ExitCode::from(output::EXIT_ERROR)
        }
    })
}

fn client(mut stream: UnixStream, args: Vec<OsString>) -> Result<ExitCode> {
    let args = args
        .into_iter()
        .map(|a| {
            a.into_string().map_err(|a| {
                anyhow::anyhow!("argument {a:?} is not UTF-8, which the server cannot be sent")
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let width = console::Term::stderr()
        .size_checked()
        .map_or(80, |(_, w)| w);
    let request = Request {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        args,
        cwd: std::env::current_dir().context("reading the working directory")?,
        stdin_tty: io::stdin().is_terminal(),
        stderr_tty: io::stderr().is_terminal(),
        width,
        user: Some(crate::context::os_user()),
    };
    let mut line = serde_json::to_vec(&request).context("encoding the request")?;
    line.push(b'\n');
    stream.write_all(&line).context("sending the request")?;
    let mut reader = io::BufReader::new(stream.try_clone().context("cloning the socket")?);
    loop {
        let (tag, bytes) = match output::read_frame(&mut reader) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                bail!(
                    "the server closed the connection before the command ended (its log says why)"
                )
            }
            Err(e) => return Err(anyhow::Error::new(e).context("reading from the server")),
        };
        match tag {
            TAG_STDOUT => {
                let mut out = io::stdout().lock();
                out.write_all(&bytes)
                    .and_then(|()| out.flush())
                    .context("writing stdout")?;
            }
            TAG_STDERR => {
                let mut err = io::stderr().lock();
                let _ = err.write_all(&bytes).and_then(|()| err.flush());
            }
            TAG_EXIT => return Ok(ExitCode::from(bytes.first().copied().unwrap_or(2))),
            TAG_READ_LINE | TAG_READ_ALL | TAG_READ_SECRET => {
                let mut input = Vec::new();
                if tag == TAG_READ_SECRET {
                    // A password (`export --sign` with an encrypted key), typed unseen.
                    let line = console::Term::stderr()
                        .read_secure_line()
                        .context("reading a password from the terminal")?;
                    input = line.into_bytes();
                } else if tag == TAG_READ_LINE {
                    let mut text = String::new();
                    io::BufRead::read_line(&mut io::stdin().lock(), &mut text)
                        .context("reading standard input")?;
                    input = text.into_bytes();
                } else {
                    io::stdin()
                        .read_to_end(&mut input)
                        .context("reading standard input")?;
                }
                if input.len() > MAX_FRAME_BYTES {
                    bail!("standard input is over {MAX_FRAME_BYTES} bytes");
                }
                let mut frame = vec![TAG_INPUT];
                frame.extend_from_slice(&u32::try_from(input.len()).unwrap_or(0).to_be_bytes());
                frame.extend_from_slice(&input);
                stream
                    .write_all(&frame)
                    .context("sending input to the server")?;
            }
            other => bail!("the server sent an unknown frame ({other})"),
        }
    }
}

/// What a command run in the server is given: the server's configuration and open store.
#[derive(Clone)]
pub struct Shared {
    pub config: Config,
    pub data: PathBuf,
    pub store: Store,
    /// The registry's metrics (an import shows its progress there).
    pub metrics: airlock_registry::Metrics,
}

/// The server's socket, removed when dropped.
#[derive(Debug)]
pub struct Listener {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Listener {
    /// Listens on the data directory's socket; call within the server's runtime. The store
    /// lock is held by the caller, so a socket file found there was left by a server that
    /// stopped without removing it.
    pub fn start(shared: Shared) -> Result<Listener> {
        let path = socket_path(&shared.data);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("removing the old socket {}", path.display())));
            }
        }
        let listener = tokio::net::UnixListener::bind(&path)
            .with_context(|| format!("listening on {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} owner-only", path.display()))?;
        let owner = std::fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .uid();
        let shared = Arc::new(shared);
        let task = tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!("accepting a command on the socket: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let uid = stream.peer_cred().map(|c| c.uid());
                if !matches!(uid, Ok(u) if u == owner || u == 0) {
                    tracing::warn!(?uid, "refused a command from another user on the socket");
                    continue;
                }
                let stream = match stream.into_std().and_then(|s| {
                    s.set_nonblocking(false)?;
                    Ok(s)
                }) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("taking a command connection: {e}");
                        continue;
                    }
                };
                let shared = shared.clone();
                let spawned = std::thread::Builder::new()
                    .name("airlock-command".into())
                    .spawn(move || serve_one(stream, &shared, uid.ok()));
                if let Err(e) = spawned {
                    tracing::warn!("starting a command thread: {e}");
                }
            }
        });
        Ok(Listener { path, task })
    }
}

/// Reads a request, runs it, sends its exit code.
fn serve_one(stream: UnixStream, shared: &Shared, uid: Option<u32>) {
    let request = match read_request(&stream) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("a command on the socket: {e:#}");
            let remote = Remote::new(stream, false, false, 80);
            let _ = remote.send(TAG_STDERR, format!("error: {e:#}\n").as_bytes());
            let _ = remote.send(TAG_EXIT, &[output::EXIT_ERROR]);
            return;
        }
    };
    let remote = Remote::new(stream, request.stderr_tty, request.stdin_tty, request.width);
    let args = request.args.join(" ");
    tracing::info!(command = %args, "running a command for a client");
    let code = remote.run(|| {
        if request.version != env!("CARGO_PKG_VERSION") {
            errln!(
                "error: this airlock is version {}, the running airlock serve is {}: run the \
                 command with the server's binary, or stop the server first",
                request.version,
                env!("CARGO_PKG_VERSION")
            );
            return output::EXIT_ERROR;
        }
        let user = request.user.clone().unwrap_or_else(|| match uid {
            Some(uid) => format!("uid {uid}"),
            None => "unknown user".into(),
        });
        crate::run_in_server(&request.args, &request.cwd, shared, user)
    });
    tracing::info!(command = %args, code, "command ended");
    let _ = remote.send(TAG_EXIT, &[code]);
}

fn read_request(stream: &UnixStream) -> Result<Request> {
    let mut line = Vec::new();
    let mut r = io::BufReader::new(stream.take(MAX_REQUEST_BYTES));
    io::BufRead::read_until(&mut r, b'\n', &mut line).context("reading the request")?;
    serde_json::from_slice(&line).context("the request is not one this server reads")
}

/// The exit code `code` stands for: 0, 1 (a check found problems), or 2 (error).
pub fn exit_number(code: ExitCode) -> u8 {
    if code == ExitCode::SUCCESS {
        0
    } else if code == ExitCode::from(output::EXIT_PROBLEMS) {
        output::EXIT_PROBLEMS
    } else {
        output::EXIT_ERROR
    }
}

/// `path` taken from `cwd` when relative.
pub fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        cwd.join(path)
    }
}
