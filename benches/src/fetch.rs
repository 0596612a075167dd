//! Concurrent fetchers of registry blobs, as the nodes of a cluster deploying a release: each
//! fetcher GETs every blob of a list over its own keep-alive connection, reads every body in
//! full and checks its size and sha256 digest.

use std::{
    net::SocketAddr,
    sync::Barrier,
    time::{Duration, Instant},
};

use sha2::{Digest as _, Sha256};

use crate::http::Client;

/// A blob to fetch: where, and what it must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// Repository holding it, e.g. `example.com/site/app-01`.
    pub repository: String,
    /// Its digest, `sha256:<hex>`.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
}

impl Wanted {
    /// The blob's URL path, `/v2/<repository>/blobs/<digest>`.
    pub fn path(&self) -> String {
        format!("/v2/{}/blobs/{}", self.repository, self.digest)
    }
}

/// What a fan-out moved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FanOut {
    /// From the fetchers' common start to the last body's last byte.
    pub wall: Duration,
    /// Body bytes received by all fetchers.
    pub bytes: u64,
    /// Blobs received by all fetchers, each checked.
    pub blobs: u64,
}

/// `fetchers` threads each GET every blob of `wanted` in order from the registry at `addr`,
/// all starting at once; an error names the first blob that failed or did not match.
pub fn fan_out(addr: SocketAddr, wanted: &[Wanted], fetchers: usize) -> Result<FanOut, String> {
    let start = Barrier::new(fetchers + 1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..fetchers)
            .map(|i| {
                let start = &start;
                scope.spawn(move || {
                    let mut client = Client::new(addr);
                    start.wait();
                    let mut bytes = 0;
                    for w in wanted {
                        bytes += fetch_checked(&mut client, w)
                            .map_err(|e| format!("fetcher {i}: {e}"))?;
                    }
                    Ok::<u64, String>(bytes)
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        let mut total = FanOut {
            wall: Duration::ZERO,
            bytes: 0,
            blobs: 0,
        };
        let mut first_error = None;
        for h in handles {
            match h.join() {
                Ok(Ok(bytes)) => {
                    total.bytes += bytes;
                    total.blobs += wanted.len() as u64;
                }
                Ok(Err(e)) => first_error = first_error.or(Some(e)),
                Err(_) => first_error = first_error.or(Some("a fetcher panicked".to_owned())),
            }
        }
        total.wall = began.elapsed();
        first_error.map_or(Ok(total), Err)
    })
}

/// GETs one blob in full and checks its status, size and digest; its size.
pub fn fetch_checked(client: &mut Client, w: &Wanted) -> Result<u64, String> {
    let mut hasher = Sha256::new();
    let r = client
        .get(&w.path(), &[], &mut |b| hasher.update(b))
        .map_err(|e| format!("GET {}: {e}", w.path()))?;
    if r.status != 200 {
        return Err(format!("GET {}: status {}", w.path(), r.status));
    }
    let digest = format!("sha256:{:x}", hasher.finalize());
    if r.body_bytes != w.size || digest != w.digest {
        return Err(format!(
            "GET {}: {} bytes with digest {digest}, expected {} bytes",
            w.path(),
            r.body_bytes,
            w.size
        ));
    }
    Ok(r.body_bytes)
}

#[cfg(test)]
mod tests {
    use std::{
        io::{BufRead, BufReader, Write},
        net::TcpListener,
    };

    use super::*;

    /// A registry of one blob, `hello`, at any path, on each of `connections` connections.
    fn one_blob_server(connections: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            for _ in 0..connections {
                let (stream, _) = listener.accept().expect("accept");
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let mut stream = stream;
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                        if line == "\r\n" {
                            let _ = stream
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
                        }
                        line.clear();
                    }
                });
            }
        });
        addr
    }

    fn wanted(digest: &str) -> Wanted {
        Wanted {
            repository: "a/b".to_owned(),
            digest: digest.to_owned(),
            size: 5,
        }
    }

    #[test]
    fn every_fetcher_gets_every_blob_checked() {
        let hello = format!("sha256:{:x}", Sha256::digest(b"hello"));
        let addr = one_blob_server(3);
        let list = vec![wanted(&hello), wanted(&hello)];
        let out = fan_out(addr, &list, 3).expect("fan-out");
        assert_eq!((out.bytes, out.blobs), (30, 6));
        assert_eq!(list[0].path(), format!("/v2/a/b/blobs/{hello}"));
    }

    #[test]
    fn a_wrong_digest_is_named() {
        let addr = one_blob_server(1);
        let bad = format!("sha256:{}", "0".repeat(64));
        let err = fan_out(addr, &[wanted(&bad)], 1).expect_err("mismatch");
        assert!(err.contains(&bad) && err.contains("fetcher 0"), "{err}");
    }
}
