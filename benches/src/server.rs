//! Registry processes a benchmark measures: `airlock serve` over a data directory, and CNCF
//! distribution (Debian's `docker-registry`) over a storage directory. Each listens on an
//! ephemeral port of 127.0.0.1 only, logs to a file, and is killed when dropped (also when the
//! benchmark panics).

use std::{
    fs,
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    http::Client,
    measure::{peak_rss_bytes, process_cpu_seconds, reset_peak_rss},
    process::airlock_command,
};

/// How long a registry may take to answer its first request.
const STARTUP: Duration = Duration::from_secs(60);

/// How long a registry may take to drain and exit after SIGTERM.
const SHUTDOWN: Duration = Duration::from_secs(120);

/// A running registry process.
pub trait Server {
    /// Where it listens.
    fn addr(&self) -> SocketAddr;

    /// Its process id.
    fn pid(&self) -> u32;

    /// CPU seconds it used so far.
    fn cpu_seconds(&self) -> f64 {
        process_cpu_seconds(self.pid())
    }

    /// Its peak RSS in bytes since it started or since [`Server::reset_peak_rss`].
    fn peak_rss_bytes(&self) -> u64 {
        peak_rss_bytes(self.pid()).unwrap_or(0)
    }

    /// Starts its peak RSS over from its current RSS; false if the kernel refused.
    fn reset_peak_rss(&self) -> bool {
        reset_peak_rss(self.pid())
    }
}

/// Whether `airlock serve` accepts pushes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `--read-only`.
    ReadOnly,
    /// Pushes accepted, blob cache written.
    ReadWrite,
}

/// The CPUs a server may run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cores {
    /// Every core of the machine.
    All,
    /// CPU 0 only (`taskset -c 0`).
    One,
}

/// `airlock serve` on an ephemeral loopback port.
#[derive(Debug)]
pub struct Airlock {
    child: Child,
    addr: SocketAddr,
    /// Held open: serve's stdout is a pipe it may write to again.
    _stdout: BufReader<ChildStdout>,
}

impl Airlock {
    /// Starts `bin serve` over the store at `data`, logging to `log`; waits for its address.
    pub fn start(bin: &Path, data: &Path, access: Access, cores: Cores, log: &Path) -> Airlock {
        let wrapper: &[&str] = match cores {
            Cores::All => &[],
            Cores::One => &["taskset", "-c", "0"],
        };
        let mut c = airlock_command(bin, wrapper);
        c.arg("--data")
            .arg(data)
            .args(["serve", "--listen", "127.0.0.1:0"]);
        if access == Access::ReadOnly {
            c.arg("--read-only");
        }
        let log_file = fs::File::create(log).expect("create the serve log");
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("start airlock serve");
        let mut stdout = BufReader::new(child.stdout.take().expect("serve's stdout"));
        let mut line = String::new();
        let read = stdout.read_line(&mut line);
        let Some(addr) = read.ok().and_then(|_| listening_addr(&line)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "airlock serve printed {line:?}, not its address:\n{}",
                fs::read_to_string(log).unwrap_or_default()
            );
        };
        let mut server = Airlock {
            child,
            addr,
            _stdout: stdout,
        };
        wait_ready(&mut server.child, addr, log);
        server
    }

    /// Sends SIGTERM and waits for the server to drain and exit.
    pub fn stop(mut self) {
        terminate(&mut self.child);
    }
}

impl Server for Airlock {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Airlock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in serve's first line, `airlock registry listening on http://ADDR[ (read-only)]`.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.trim().split_once("http://")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// CNCF distribution 2.8 (`docker-registry serve CONFIG`) over a filesystem storage directory.
#[derive(Debug)]
pub struct Distribution {
    child: Child,
    addr: SocketAddr,
}

impl Distribution {
    /// Starts `bin` with its storage at `root`, its config and log in `dir`.
    pub fn start(bin: &Path, root: &Path, dir: &Path) -> Distribution {
        fs::create_dir_all(dir).expect("create the registry's dir");
        let addr = free_loopback_port();
        let config = dir.join("config.yml");
        fs::write(&config, distribution_config(root, addr)).expect("write the registry config");
        let log = dir.join("registry.log");
        let log_file = fs::File::create(&log).expect("create the registry log");
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log handle"))
            .stderr(log_file)
            .spawn()
            .expect("start docker-registry");
        let mut server = Distribution { child, addr };
        wait_ready(&mut server.child, addr, &log);
        server
    }

    /// Sends SIGTERM and waits for the registry to exit.
    pub fn stop(mut self) {
        terminate(&mut self.child);
    }
}

impl Server for Distribution {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's `/etc/docker/registry/config.yml` without authentication, storing under `root` and
/// listening on `addr` (which must be loopback).
fn distribution_config(root: &Path, addr: SocketAddr) -> String {
    assert!(addr.ip().is_loopback(), "{addr} is not a loopback address");
    format!(
        "version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: {addr}
  headers:
    X-Content-Type-Options: [nosniff]
",
        root = root.display()
    )
}

/// A port of 127.0.0.1 that was free a moment ago (for a program that cannot be told port 0).
fn free_loopback_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral loopback port")
}

/// Waits until the registry at `addr` answers `GET /v2/`; panics with its log if it exits or
/// takes longer than [`STARTUP`].
fn wait_ready(child: &mut Child, addr: SocketAddr, log: &Path) {
    let began = Instant::now();
    let log_text = || fs::read_to_string(log).unwrap_or_default();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the registry at {addr} exited ({status}):\n{}", log_text());
        }
        if Client::new(addr)
            .get("/v2/", &[], &mut |_| {})
            .is_ok_and(|r| r.status == 200)
        {
            return;
        }
        if began.elapsed() > STARTUP {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the registry at {addr} is not ready after {STARTUP:?}:\n{}",
                log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM (through kill(1): this crate has no unsafe code), then a wait of at most
/// [`SHUTDOWN`], then SIGKILL.
fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let began = Instant::now();
    while began.elapsed() < SHUTDOWN {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A fresh copy of the directory `from` at `to` (`cp -a`), for a server that must start cold.
pub fn copy_dir(from: &Path, to: &Path) -> PathBuf {
    let _ = fs::remove_dir_all(to);
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).expect("create the copy's parent");
    }
    crate::process::must(Command::new("cp").arg("-a").arg(from).arg(to), "cp -a");
    to.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_announces_its_address() {
        let ro = "airlock registry listening on http://127.0.0.1:39001 (read-only)\n";
        assert_eq!(listening_addr(ro), "127.0.0.1:39001".parse().ok());
        let rw = "airlock registry listening on http://[::1]:5000";
        assert_eq!(listening_addr(rw), "[::1]:5000".parse().ok());
        assert_eq!(listening_addr("starting"), None);
    }

    #[test]
    fn the_registry_config_names_root_and_loopback_address() {
        let addr: SocketAddr = "127.0.0.1:5123".parse().expect("addr");
        let config = distribution_config(Path::new("/tmp/x/root"), addr);
        assert!(config.contains("rootdirectory: /tmp/x/root\n"));
        assert!(config.contains("  addr: 127.0.0.1:5123\n"));
        assert!(!config.contains("auth"));
    }

    #[test]
    #[should_panic(expected = "not a loopback address")]
    fn the_registry_never_listens_beyond_loopback() {
        let addr: SocketAddr = "0.0.0.0:5000".parse().expect("addr");
        distribution_config(Path::new("/r"), addr);
    }
}
