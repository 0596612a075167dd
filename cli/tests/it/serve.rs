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
