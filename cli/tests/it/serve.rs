use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Command, Stdio},
    time::Duration,
};

/// Starts `airlock serve` on an ephemeral loopback port, checks `/v2/`, stops it with SIGTERM.
#[test]
fn serve_answers_v2_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["--data", "data", "serve", "--listen", "127.0.0.1:0"])
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
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
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        resp.to_ascii_lowercase()
            .contains("docker-distribution-api-version: registry/2.0"),
        "{resp}"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = child.wait().unwrap();
    assert!(code.success(), "graceful stop exits 0, got {code:?}");
    assert!(
        tmp.path().join("data/store.json").exists(),
        "serve created the store"
    );
}

#[test]
fn read_only_serve_needs_an_existing_store() {
    let tmp = tempfile::tempdir().unwrap();
    let o = crate::common::airlock(
        tmp.path(),
        &[
            "--data",
            "none",
            "serve",
            "--read-only",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(crate::common::stderr(&o).contains("none"));
}

/// A running `airlock serve`, killed on drop; its first stdout line read.
struct Serving {
    child: std::process::Child,
    first_line: String,
}

impl Serving {
    fn start(cwd: &std::path::Path, args: &[&str], stderr: std::fs::File) -> Serving {
        let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(args)
            .current_dir(cwd)
            .env_remove("AIRLOCK_DATA")
            .env_remove("AIRLOCK_LISTEN")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut first_line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first_line)
            .unwrap();
        Serving { child, first_line }
    }

    /// `host:port` from the first line.
    fn addr(&self) -> String {
        let (_, rest) = self.first_line.split_once("://").unwrap();
        rest.split_whitespace().next().unwrap().to_owned()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA and server certificates for 127.0.0.1.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new() -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn issue(&self, cert: &std::path::Path, key: &std::path::Path) {
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let pair = rcgen::KeyPair::generate().unwrap();
        let signed = params.signed_by(&pair, &self.cert, &self.key).unwrap();
        std::fs::write(cert, signed.pem()).unwrap();
        std::fs::write(key, pair.serialize_pem()).unwrap();
    }

    /// A TLS connection to `addr` trusting only this CA, and the server's certificate.
    fn connect(
        &self,
        addr: &str,
    ) -> (
        rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
        Vec<u8>,
    ) {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.der().clone()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).unwrap();
        }
        let cert = tls.conn.peer_certificates().unwrap()[0].to_vec();
        (tls, cert)
    }
}

/// Issue 16: `serve --tls-cert --tls-key` with accounts from airlock.toml: the startup line,
/// an authenticated push, its audit line, and a certificate reload on SIGHUP that new
/// connections see while an open one keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_serve_https_with_accounts_audit_and_reload_on_sighup() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca = Ca::new();
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    ca.issue(&cert, &key);
    let hash = bcrypt::hash("alice-pw", 4).unwrap();
    std::fs::write(dir.join("htpasswd"), format!("alice:{hash}\n")).unwrap();
    std::fs::write(
        dir.join("airlock.toml"),
        "[auth]\nhtpasswd = \"htpasswd\"\n\n[[access]]\nrepositories = [\"**\"]\n\
         users = [\"alice\"]\nactions = [\"push\"]\n",
    )
    .unwrap();
    let log = dir.join("stderr.log");
    let server = Serving::start(
        dir,
        &[
            "--data",
            "data",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "server.crt",
            "--tls-key",
            "server.key",
        ],
        std::fs::File::create(&log).unwrap(),
    );
    assert!(
        server
            .first_line
            .starts_with("airlock registry listening on https://127.0.0.1:")
            && server.first_line.contains("with access: 1 account from")
            && server.first_line.contains("1 access rule;"),
        "{}",
        server.first_line
    );
    let addr = server.addr();
    let registry = airlock_conformance::Registry::new(&format!("https://{addr}"))
        .with_ca(ca.cert.pem().as_bytes())
        .unwrap()
        .with_basic("alice", "alice-pw");
    let image = airlock_conformance::ImageBuilder::new().layers(1).build();
    registry.push_image("cli/app", "v1", &image).await.unwrap();

    // Reload: a connection opened before keeps working, new ones get the new certificate.
    let (mut open, before) = ca.connect(&addr);
    ca.issue(&cert, &key);
    server.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, now) = ca.connect(&addr);
        if now != before {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP did not reload the certificate"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    write!(
        open,
        "GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    let _ = open.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");

    server.signal("TERM");
    let mut server = server;
    assert!(server.child.wait().unwrap().success());
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("push manifest cli/app:v1 by alice from 127.0.0.1: done"),
        "{log}"
    );
    assert!(log.contains("reloaded the TLS certificate"), "{log}");
}

/// Issue 16: without accounts, a registry on a non-loopback address serves pulls and refuses
/// pushes, and says so at startup (only loopback traffic is sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_serve_without_accounts_on_a_network_address_is_pull_only() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Serving::start(
        tmp.path(),
        &["--data", "data", "serve", "--listen", "0.0.0.0:0"],
        std::fs::File::create(tmp.path().join("stderr.log")).unwrap(),
    );
    assert!(
        server.first_line.contains("with access: pulls only"),
        "{}",
        server.first_line
    );
    let port = server.addr().rsplit(':').next().unwrap().to_owned();
    let registry = airlock_conformance::Registry::new(&format!("http://127.0.0.1:{port}"));
    registry
        .request(hyper::Method::GET, "/v2/")
        .send()
        .await
        .unwrap()
        .expect(&[200])
        .unwrap();
    let push = registry
        .request(hyper::Method::POST, "/v2/app/blobs/uploads/")
        .send()
        .await
        .unwrap();
    let push = push
        .expect_error(&[403], "DENIED", airlock_conformance::Optional::Require)
        .unwrap();
    assert!(String::from_utf8_lossy(&push.body).contains("auth.anonymous_write"));
}

#[test]
fn issue_16_serve_refuses_an_htpasswd_that_is_not_bcrypt_naming_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("htpasswd"), "# accounts\nbob:$apr1$x$y\n").unwrap();
    std::fs::write(
        tmp.path().join("airlock.toml"),
        "[auth]\nhtpasswd = \"htpasswd\"\n",
    )
    .unwrap();
    let o = crate::common::airlock(
        tmp.path(),
        &["--data", "data", "serve", "--listen", "127.0.0.1:0"],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = crate::common::stderr(&o);
    assert!(
        err.contains("htpasswd:2: account \"bob\" has an MD5 ($apr1$) hash"),
        "{err}"
    );
}
