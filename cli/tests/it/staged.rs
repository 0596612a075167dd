//! Issue 14: pushes to `airlock serve` are acknowledged once durable and ingested in the
//! background. The server is a child process killed with SIGKILL at random points, during pushes
//! and during ingests; after each kill everything acknowledged is there, exact, and the store
//! verifies clean; a last start finishes the ingest. `du`, `verify` and `export` with staged
//! blobs present.
//!
//! Kills are at random points; half the iterations pause pushing first, so that the kill lands
//! in the ingest, which starts once pushes pause (`airlock_store::INGEST_QUIET`).

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use airlock_store::{
    Access, Digest, PutOptions, RepoChange, Staged, Store, StoreOptions, StoredAs, Verify,
};
use rand::{Rng, SeedableRng};

use crate::common::{airlock, bytes, stderr, stdout};

const ITERATIONS: u64 = 8;

/// Blobs pushed before a pause in the iterations that kill the server while it ingests (it
/// ingests once pushes pause).
const PUSHED_BEFORE_PAUSE: u64 = 2;

/// Acknowledged blobs: digest -> (repository, bytes).
type Acked = BTreeMap<Digest, (String, Vec<u8>)>;

/// `airlock serve` on an ephemeral port, its stderr lines collected.
pub(crate) struct Serve {
    child: Child,
    pub(crate) addr: String,
    pub(crate) log: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    /// Serves the store `data` under `cwd`.
    pub(crate) fn start(cwd: &Path) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(["-v", "--data", "data", "serve", "--listen", "127.0.0.1:0"])
            .current_dir(cwd)
            .env_remove("AIRLOCK_DATA")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
        Serve { child, addr, log }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit status must be success.
    pub(crate) fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status:?}");
    }

    /// Waits for the log line the ingest writes when no staged blob is left (the server must
    /// not exit meanwhile).
    fn wait_for_idle_ingest(&mut self) {
        loop {
            if self
                .log
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("ingest idle"))
            {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("serve exited ({status:?}): {:?}", self.log.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One HTTP/1.1 request on its own connection: status, `Location`, body.
fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, Option<String>, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let text = String::from_utf8_lossy(&resp[..split]).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let location = text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("location")
            .then(|| v.trim().to_owned())
    });
    Ok((status, location, resp[split + 4..].to_vec()))
}

/// Pushes a blob, by single POST or by POST, PATCH and PUT; `Ok(true)` on 201.
fn push_blob(addr: &str, repo: &str, data: &[u8], chunked: bool) -> std::io::Result<bool> {
    let d = Digest::sha256(data);
    if !chunked {
        let path = format!("/v2/{repo}/blobs/uploads/?digest={d}");
        return Ok(request(addr, "POST", &path, &[], data)?.0 == 201);
    }
    let (status, location, _) = request(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        b"",
    )?;
    let location = location
        .filter(|_| status == 202)
        .ok_or_else(|| std::io::Error::other("no session"))?;
    let (status, location, _) = request(addr, "PATCH", &location, &[], data)?;
    let location = location
        .filter(|_| status == 202)
        .ok_or_else(|| std::io::Error::other("no patch"))?;
    let (status, _, _) = request(addr, "PUT", &format!("{location}?digest={d}"), &[], b"")?;
    Ok(status == 201)
}

/// A gzip'd, compressible layer of a few MB: an ingest takes a noticeable time.
fn gzip_layer(seed: u64) -> Vec<u8> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let words = [
        "alpha ", "beta ", "gamma ", "delta ", "airlock ", "layer ", "\n",
    ];
    let mut text = Vec::new();
    let len = r.gen_range(300_000..1_500_000);
    while text.len() < len {
        text.extend_from_slice(words[r.gen_range(0..words.len())].as_bytes());
        if r.gen_bool(0.01) {
            text.extend_from_slice(&bytes(r.r#gen(), 64));
        }
    }
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(&text).unwrap();
    e.finish().unwrap()
}

fn manifest(config: &[u8], layer: &[u8]) -> Vec<u8> {
    let desc = |media: &str, data: &[u8]| {
        format!(
            "{{\"mediaType\":\"{media}\",\"digest\":\"{}\",\"size\":{}}}",
            Digest::sha256(data),
            data.len()
        )
    };
    format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\
         \"config\":{},\"layers\":[{}]}}",
        desc("application/vnd.oci.image.config.v1+json", config),
        desc("application/vnd.oci.image.layer.v1.tar+gzip", layer)
    )
    .into_bytes()
}

/// Every acknowledged blob reads back exactly, and the store verifies clean; returns how many
/// blobs are still staged.
fn check_store(data: &Path, acked: &Acked) -> usize {
    let opts = StoreOptions {
        access: Access::ReadOnly,
        ..StoreOptions::default()
    };
    let store = Store::open(data, opts).unwrap();
    for (d, (_, bytes)) in acked {
        let back = store
            .read_blob(d)
            .unwrap_or_else(|e| panic!("acknowledged {d}: {e}"));
        assert!(back == *bytes, "acknowledged {d} reads back other bytes");
    }
    let report = store.verify(Verify::Full).unwrap();
    assert!(report.is_clean(), "{:?}", report.defects);
    store.staged_blobs().unwrap().len()
}

#[test]
fn issue_14_serve_killed_during_pushes_and_ingests_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut acked = Acked::new();
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(14);
    for iteration in 0..ITERATIONS {
        let serve = Serve::start(tmp.path());
        let addr = serve.addr.clone();
        let done = Arc::new(AtomicBool::new(false));
        let got: Arc<Mutex<Acked>> = Arc::default();
        let pusher = {
            let (done, got) = (done.clone(), got.clone());
            std::thread::spawn(move || {
                // Odd iterations pause after a few pushes: the kill lands in the ingest.
                let pushes = if iteration % 2 == 1 {
                    PUSHED_BEFORE_PAUSE
                } else {
                    u64::MAX
                };
                for n in 0..pushes {
                    if done.load(Ordering::Relaxed) {
                        return;
                    }
                    let seed = iteration * 1000 + n;
                    let blob = if n % 3 == 2 {
                        bytes(seed, 40_000)
                    } else {
                        gzip_layer(seed)
                    };
                    let repo = format!("crash/{iteration}");
                    match push_blob(&addr, &repo, &blob, n % 2 == 0) {
                        Ok(true) => {
                            let d = Digest::sha256(&blob);
                            got.lock().unwrap().insert(d, (repo, blob));
                        }
                        // The server died mid-request: not acknowledged.
                        Ok(false) | Err(_) => return,
                    }
                }
            })
        };
        // At least one acknowledgment, then a kill at a random point: mid-push, or (after the
        // pause, past INGEST_QUIET) mid-ingest.
        while got.lock().unwrap().is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let delay = match iteration % 2 {
            0 => r.gen_range(0..1500),
            _ => r.gen_range(800..3500),
        };
        std::thread::sleep(Duration::from_millis(delay));
        serve.kill();
        done.store(true, Ordering::Relaxed);
        pusher.join().unwrap();
        acked.append(&mut got.lock().unwrap());
        let staged = check_store(&data, &acked);
        eprintln!(
            "kill {iteration}: {} acknowledged, {staged} staged",
            acked.len()
        );
    }

    // A last start: pulled exactly while staged or not, then the ingest finishes.
    let staged = check_store(&data, &acked);
    let mut serve = Serve::start(tmp.path());
    for (d, (repo, bytes)) in &acked {
        let (status, _, body) = request(
            &serve.addr,
            "GET",
            &format!("/v2/{repo}/blobs/{d}"),
            &[],
            b"",
        )
        .unwrap();
        assert_eq!(status, 200, "{d}");
        assert!(body == *bytes, "{d} pulled back other bytes");
    }
    if staged > 0 {
        serve.wait_for_idle_ingest();
    }
    serve.stop();
    assert_eq!(check_store(&data, &acked), 0, "the ingest finished");
    let ro = StoreOptions {
        access: Access::ReadOnly,
        ..StoreOptions::default()
    };
    let store = Store::open(&data, ro).unwrap();
    for d in acked.keys() {
        let how = store.stat_blob(d).unwrap().unwrap().stored_as;
        assert_ne!(how, StoredAs::Staged, "{d}");
    }
}

/// A pushed image pulled back at once, `du` and `verify` with a staged blob present, and an
/// `export` that ingests first.
#[test]
fn issue_14_du_verify_and_export_with_staged_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let store = Store::open(&data, StoreOptions::default()).unwrap();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = gzip_layer(1);
    let (c, l) = (Digest::sha256(config), Digest::sha256(&layer));
    store
        .put_blob(&c, &config[..], PutOptions::default())
        .unwrap();
    let staged = store
        .stage_blob(&l, &layer[..], PutOptions::default(), &[])
        .unwrap();
    assert_eq!(staged, Staged::Staged);
    let m = manifest(config, &layer);
    let md = Digest::sha256(&m);
    store.put_blob(&md, &m[..], PutOptions::default()).unwrap();
    store
        .apply_repo_changes(&[
            RepoChange::LinkManifest {
                repo: "app".into(),
                digest: md.clone(),
                children: vec![c, l.clone()],
                subject: None,
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            },
            RepoChange::SetTag {
                repo: "app".into(),
                tag: "v1".into(),
                digest: md,
            },
        ])
        .unwrap();
    drop(store);

    let o = airlock(tmp.path(), &["--data", "data", "du"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("staged     1"), "{}", stdout(&o));
    let o = airlock(tmp.path(), &["--data", "data", "--json", "du"]);
    let du: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(du["staged"]["blobs"], 1);
    let o = airlock(tmp.path(), &["--data", "data", "verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let o = airlock(tmp.path(), &["--data", "data", "ls"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let o = airlock(
        tmp.path(),
        &[
            "--data",
            "data",
            "export",
            "app:v1",
            "--out",
            "out",
            "--no-binary",
            "--volume-size",
            "2GiB",
            "--level",
            "3",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("ingested 1 staged blob"),
        "{}",
        stderr(&o)
    );
    let o = airlock(tmp.path(), &["--data", "data", "--json", "du"]);
    let du: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(du["staged"]["blobs"], 0);
    assert_eq!(du["rebuilt"]["blobs"], 1);

    // A damaged staged file is a defect, named, exit 1.
    let store = Store::open(&data, StoreOptions::default()).unwrap();
    let other = gzip_layer(2);
    let od = Digest::sha256(&other);
    store
        .stage_blob(&od, &other[..], PutOptions::default(), &[])
        .unwrap();
    drop(store);
    let file = data.join("staged").join(format!("sha256-{}", od.hex()));
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let o = airlock(tmp.path(), &["--data", "data", "verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains(&format!("staged blob {od} is corrupt")),
        "{}",
        stdout(&o)
    );
}
