//! containerd 1.6 (its own root, state and socket under a temporary directory) pulls from
//! airlock: directly with `--plain-http`, and through a `hosts.toml` mirror for docker.io, which
//! makes containerd ask for `/v2/library/NAME/...?ns=docker.io` and so proves airlock maps `ns`
//! to the repository `docker.io/library/NAME`.
//!
//! Nothing may reach the internet: the mirror is the only host allowed to pull or resolve (the
//! docker.io server entry keeps only `push`), and containerd returns a mirror's connection
//! errors instead of trying the next host, so a broken mirror fails the test.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use airlock_conformance::{Image, ImageBuilder, Registry};

use crate::{
    server::TestServer,
    tools::{Output, find, run, run_failing},
};

const DEADLINE: Duration = Duration::from_secs(60);
const STARTUP: Duration = Duration::from_secs(30);

/// A containerd daemon, killed when dropped (also when the test panics).
pub(crate) struct Containerd {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

impl Containerd {
    pub(crate) fn start(bin: &Path, ctr: &Path, dir: &Path) -> Containerd {
        let socket = dir.join("c.sock");
        let config = dir.join("config.toml");
        let log = dir.join("containerd.log");
        fs::write(
            &config,
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
                socket = socket.display(),
                opt = dir.join("opt").display(),
            ),
        )
        .expect("write containerd config");
        let log_file = fs::File::create(&log).expect("containerd log");
        let child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log handle"))
            .stderr(log_file)
            .spawn()
            .expect("start containerd");
        let mut daemon = Containerd { child, socket, log };
        daemon.wait_ready(ctr);
        daemon
    }

    /// Waits until `ctr version` answers over the socket.
    fn wait_ready(&mut self, ctr: &Path) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "containerd exited ({status}) at startup:\n{}",
                    self.log_text()
                );
            }
            if self.socket.exists() {
                let ok = Command::new(ctr)
                    .arg("--address")
                    .arg(&self.socket)
                    .arg("version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if ok {
                    return;
                }
            }
            if started.elapsed() > STARTUP {
                panic!(
                    "containerd not ready within {STARTUP:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn ctr(&self, ctr: &Path, args: &[&str]) -> Output {
        let mut command = Command::new(ctr);
        command.arg("--address").arg(&self.socket).args(args);
        run(&mut command, DEADLINE)
    }

    /// `ctr ARGS`, which must fail.
    pub(crate) fn ctr_fails(&self, ctr: &Path, args: &[&str]) -> Output {
        let mut command = Command::new(ctr);
        command.arg("--address").arg(&self.socket).args(args);
        run_failing(&mut command, DEADLINE)
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- containerd log\n{}", self.log_text());
        }
    }
}

/// The image digests `ctr images ls` shows for `reference`.
pub(crate) fn listed_digest(images: &Output, reference: &str) -> Option<String> {
    images.stdout.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        (fields.next() == Some(reference))
            .then(|| fields.find(|f| f.starts_with("sha256:")).map(str::to_owned))
            .flatten()
    })
}

async fn push(registry: &Registry, repo: &str, tag: &str) -> Image {
    let image = ImageBuilder::new().layers(2).layer_bytes(100_000).build();
    registry
        .push_image(repo, tag, &image)
        .await
        .expect("push the image to airlock");
    image
}

#[tokio::test]
async fn containerd_pulls_directly_and_through_a_docker_io_mirror() {
    let (Some(containerd), Some(ctr)) = (find("containerd"), find("ctr")) else {
        return;
    };
    let server = TestServer::start();
    let registry = Registry::new(&server.base);
    // Under /tmp: the socket path must stay well under the 108 bytes of sun_path.
    let tmp = tempfile::Builder::new()
        .prefix("cd")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let daemon = Containerd::start(&containerd, &ctr, tmp.path());

    // A plain pull by host and port.
    let direct = push(&registry, "interop/containerd", "v1").await;
    let reference = format!("{}/interop/containerd:v1", server.addr);
    daemon.ctr(
        &ctr,
        &[
            "images",
            "pull",
            "--plain-http",
            "--snapshotter",
            "native",
            &reference,
        ],
    );
    let images = daemon.ctr(&ctr, &["images", "ls"]);
    assert_eq!(
        listed_digest(&images, &reference).as_deref(),
        Some(direct.manifest.digest.as_str()),
        "ctr images ls after the direct pull:\n{}",
        images.stdout
    );

    // A docker.io pull through the mirror: airlock holds it as docker.io/library/<name>.
    let name = format!("airlock-conformance-{}", std::process::id());
    let mirrored = push(&registry, &format!("docker.io/library/{name}"), "t1").await;
    let hosts = tmp.path().join("certs.d/docker.io");
    fs::create_dir_all(&hosts).expect("hosts dir");
    fs::write(
        hosts.join("hosts.toml"),
        format!(
            r#"# The upstream may only be pushed to, so a pull can never fall back to the internet.
server = "https://registry-1.docker.io"
capabilities = ["push"]

[host."http://{addr}"]
  capabilities = ["pull", "resolve"]
  override_path = false
"#,
            addr = server.addr
        ),
    )
    .expect("write hosts.toml");
    let hosts_dir = tmp.path().join("certs.d");
    let reference = format!("docker.io/library/{name}:t1");
    let pulled = daemon.ctr(
        &ctr,
        &[
            "images",
            "pull",
            "--http-dump",
            "--snapshotter",
            "native",
            "--hosts-dir",
            hosts_dir.to_str().expect("utf-8 temp path"),
            &reference,
        ],
    );
    let dump = format!("{}{}", pulled.stdout, pulled.stderr);
    assert!(
        dump.contains("ns=docker.io"),
        "containerd did not send ?ns=docker.io to the mirror:\n{dump}"
    );
    assert!(
        !dump.contains("registry-1.docker.io"),
        "containerd went to docker.io:\n{dump}"
    );
    let images = daemon.ctr(&ctr, &["images", "ls"]);
    assert_eq!(
        listed_digest(&images, &reference).as_deref(),
        Some(mirrored.manifest.digest.as_str()),
        "ctr images ls after the mirror pull:\n{}",
        images.stdout
    );
}
