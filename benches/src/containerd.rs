//! A containerd daemon of the benchmark's own: root, state, socket and temporary mounts under
//! one directory, the CRI and every optional snapshotter off, so pulls measure a node fetching
//! and unpacking images and nothing else. Killed when dropped; mounts it left under its
//! directory are then unmounted.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{measure::process_cpu_seconds, process::must};

/// How long containerd may take to answer `ctr version`.
const STARTUP: Duration = Duration::from_secs(60);

/// A containerd daemon and the `ctr` that talks to it.
#[derive(Debug)]
pub struct Containerd {
    child: Child,
    ctr: PathBuf,
    dir: PathBuf,
    socket: PathBuf,
    log: PathBuf,
}

impl Containerd {
    /// Starts `containerd` with everything under `dir` (keep it short: the socket's path must
    /// fit the 108 bytes of `sun_path`), waiting until `ctr` reaches it.
    pub fn start(containerd: &Path, ctr: &Path, dir: &Path) -> Containerd {
        fs::create_dir_all(dir.join("tmp")).expect("create containerd's dir");
        let socket = dir.join("c.sock");
        let config = dir.join("config.toml");
        fs::write(&config, config_toml(dir)).expect("write containerd's config");
        let log = dir.join("containerd.log");
        let log_file = fs::File::create(&log).expect("create containerd's log");
        let child = Command::new(containerd)
            .arg("--config")
            .arg(&config)
            // Unpacking mounts snapshots under the temporary directory: keep them in ours.
            .env("TMPDIR", dir.join("tmp"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log handle"))
            .stderr(log_file)
            .spawn()
            .expect("start containerd");
        let mut daemon = Containerd {
            child,
            ctr: ctr.to_owned(),
            dir: dir.to_owned(),
            socket,
            log,
        };
        daemon.wait_ready();
        daemon
    }

    fn wait_ready(&mut self) {
        let began = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("containerd exited ({status}):\n{}", self.log_text());
            }
            let up = self.socket.exists()
                && self
                    .ctr_command()
                    .arg("version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
            if up {
                return;
            }
            assert!(
                began.elapsed() < STARTUP,
                "containerd not ready after {STARTUP:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn ctr_command(&self) -> Command {
        let mut c = Command::new(&self.ctr);
        c.arg("--address").arg(&self.socket).stdin(Stdio::null());
        c
    }

    /// `ctr images pull --plain-http --snapshotter SNAPSHOTTER REFERENCE`: fetches and unpacks.
    pub fn pull(&self, reference: &str, snapshotter: &str) {
        must(
            self.ctr_command().args([
                "images",
                "pull",
                "--plain-http",
                "--snapshotter",
                snapshotter,
                reference,
            ]),
            "ctr images pull",
        );
    }

    /// As [`Containerd::pull`], returning what went wrong instead of panicking.
    pub fn try_pull(&self, reference: &str, snapshotter: &str) -> Result<(), String> {
        self.pull_with(&["--snapshotter", snapshotter], reference)
    }

    /// `ctr images pull --plain-http ARGS REFERENCE`; what went wrong otherwise.
    fn pull_with(&self, args: &[&str], reference: &str) -> Result<(), String> {
        let out = self
            .ctr_command()
            .args(["images", "pull", "--plain-http"])
            .args(args)
            .arg(reference)
            .output()
            .map_err(|e| format!("running ctr: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ctr images pull {} {reference}: {}\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// `ctr images pull --http-dump --snapshotter SNAPSHOTTER --hosts-dir HOSTS REFERENCE`: a pull
    /// whose hosts (a mirror, a plain-HTTP registry) the `hosts.toml` files under `hosts` say;
    /// what ctr printed, its HTTP requests among it.
    pub fn pull_with_hosts(&self, reference: &str, snapshotter: &str, hosts: &Path) -> String {
        let out = must(
            self.ctr_command()
                .args([
                    "images",
                    "pull",
                    "--http-dump",
                    "--snapshotter",
                    snapshotter,
                ])
                .arg("--hosts-dir")
                .arg(hosts)
                .arg(reference),
            "ctr images pull",
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// `ctr images pull --plain-http --platform PLATFORM --snapshotter native REFERENCE`: fetches
    /// and unpacks the one platform asked for, even not this host's; what went wrong otherwise.
    pub fn pull_platform(&self, reference: &str, platform: &str) -> Result<(), String> {
        let args = ["--platform", platform, "--snapshotter", "native"];
        self.pull_with(&args, reference)
    }

    /// The digests of everything in containerd's content store (`ctr content ls -q`).
    pub fn content_digests(&self) -> Vec<String> {
        let out = must(
            self.ctr_command().args(["content", "ls", "-q"]),
            "ctr content ls",
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// `ctr images rm --sync REFERENCE`: the image goes, and its content with containerd's
    /// GC, so the next pull fetches every blob again.
    pub fn remove_image(&self, reference: &str) {
        must(
            self.ctr_command()
                .args(["images", "rm", "--sync", reference]),
            "ctr images rm",
        );
    }

    /// The digest `ctr images ls` shows for `reference`.
    pub fn image_digest(&self, reference: &str) -> Option<String> {
        let out = must(self.ctr_command().args(["images", "ls"]), "ctr images ls");
        listed_digest(&String::from_utf8_lossy(&out.stdout), reference)
    }

    /// CPU seconds the daemon used so far.
    pub fn cpu_seconds(&self) -> f64 {
        process_cpu_seconds(self.child.id())
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for point in mounts_under(&mountinfo, &self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&point).status();
        }
        if std::thread::panicking() {
            eprintln!("--- containerd log\n{}", self.log_text());
        }
    }
}

fn config_toml(dir: &Path) -> String {
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
"#,
        root = dir.join("root").display(),
        state = dir.join("state").display(),
        socket = dir.join("c.sock").display(),
        opt = dir.join("opt").display(),
    )
}

/// The digest column of `ctr images ls` on the line of `reference`.
fn listed_digest(images: &str, reference: &str) -> Option<String> {
    images.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        (fields.next() == Some(reference))
            .then(|| fields.find(|f| f.starts_with("sha256:")).map(str::to_owned))
            .flatten()
    })
}

/// Mount points under `dir` in a `/proc/self/mountinfo` text (field 5; spaces escaped as
/// `\040`), deepest first.
fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listed_digest_is_the_references_own() {
        let ls = "REF                      TYPE                                       DIGEST    SIZE PLATFORMS LABELS\n\
                  127.0.0.1:5/a/b:1.0      application/vnd.oci.image.manifest.v1+json sha256:aa 1.0 MiB linux/amd64 -\n\
                  127.0.0.1:5/a/c:1.0      application/vnd.oci.image.manifest.v1+json sha256:bb 1.0 MiB linux/amd64 -\n";
        assert_eq!(
            listed_digest(ls, "127.0.0.1:5/a/c:1.0").as_deref(),
            Some("sha256:bb")
        );
        assert_eq!(listed_digest(ls, "127.0.0.1:5/a/d:1.0"), None);
    }

    #[test]
    fn only_mounts_under_the_directory_deepest_first() {
        let info = "22 1 0:21 / / rw - ext4 /dev/vda rw\n\
                    40 22 0:35 / /tmp/cd1/tmp/containerd-mount1 rw - overlay overlay rw\n\
                    41 40 0:36 / /tmp/cd1/tmp/containerd-mount1/a\\040b rw - tmpfs t rw\n\
                    42 22 0:37 / /tmp/cd10 rw - tmpfs t rw\n";
        let points = mounts_under(info, Path::new("/tmp/cd1"));
        assert_eq!(
            points,
            [
                PathBuf::from("/tmp/cd1/tmp/containerd-mount1/a b"),
                PathBuf::from("/tmp/cd1/tmp/containerd-mount1"),
            ]
        );
    }

    #[test]
    fn the_config_keeps_everything_under_the_directory() {
        let config = config_toml(Path::new("/tmp/cd7"));
        assert!(config.contains(r#"root = "/tmp/cd7/root""#));
        assert!(config.contains(r#"address = "/tmp/cd7/c.sock""#));
        assert!(config.contains("io.containerd.grpc.v1.cri"));
    }
}
