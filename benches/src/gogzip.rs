//! Go's own gzip producers, through the repository's `tools/go-gzip` helper built with Debian's
//! golang-go and golang-github-klauspost-pgzip-dev (as `tools/go-gzip/make-fixtures.sh` does):
//! klauspost pgzip, what umoci, buildah, podman and skopeo write, and Go's compress/gzip, what
//! docker and buildkit write.

use std::{
    fs::File,
    io::{self, BufWriter, Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use sha2::{Digest as _, Sha256};

use crate::process::must;

/// A Go gzip producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Producer {
    /// klauspost pgzip at its default level and block size.
    Pgzip,
    /// Go's compress/gzip at level 6.
    Gzip6,
}

impl Producer {
    /// Arguments of `go-gzip` naming the producer.
    fn args(self) -> [&'static str; 3] {
        match self {
            Producer::Pgzip => ["pgzip", "-1", "0"],
            Producer::Gzip6 => ["gzip", "6", "0"],
        }
    }

    /// How a table names it.
    pub fn name(self) -> &'static str {
        match self {
            Producer::Pgzip => "pgzip",
            Producer::Gzip6 => "Go gzip -6",
        }
    }
}

/// A compressed file: its sha256 digest and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compressed {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Bytes.
    pub size: u64,
}

/// The built `go-gzip` binary.
#[derive(Clone, Debug)]
pub struct GoGzip {
    bin: PathBuf,
}

impl GoGzip {
    /// Builds `tools/go-gzip` into `dir` (GOPATH mode over Debian's Go packages).
    pub fn build(dir: &Path) -> GoGzip {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/go-gzip");
        let bin = dir.join("go-gzip");
        must(
            Command::new("go")
                .args(["build", "-o"])
                .arg(&bin)
                .arg(".")
                .current_dir(&source)
                .env("GO111MODULE", "off")
                .env("GOPATH", "/usr/share/gocode")
                .env("GOCACHE", dir.join("go-cache"))
                .env("GOFLAGS", ""),
            "go build tools/go-gzip",
        );
        GoGzip { bin }
    }

    /// Compresses what `input` writes with `producer` into the file `out`.
    pub fn compress(
        &self,
        producer: Producer,
        out: &Path,
        input: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<Compressed> {
        let mut child = Command::new(&self.bin)
            .args(producer.args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let mut file = BufWriter::new(File::create(out)?);
        let (wrote, read) = std::thread::scope(|scope| {
            let reader = scope.spawn(move || -> io::Result<(Sha256, u64)> {
                let (mut hasher, mut size, mut buf) = (Sha256::new(), 0u64, vec![0; 1 << 20]);
                loop {
                    let n = stdout.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    file.write_all(&buf[..n])?;
                    size += n as u64;
                }
                file.flush()?;
                Ok((hasher, size))
            });
            let wrote = input(&mut stdin);
            drop(stdin);
            let read = reader
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the reader panicked")));
            (wrote, read)
        });
        let output = child.wait_with_output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "go-gzip {:?}: {}: {}",
                producer.args(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        wrote?;
        let (hasher, size) = read?;
        Ok(Compressed {
            digest: format!("sha256:{:x}", hasher.finalize()),
            size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_producers_round_trip() {
        if crate::process::find_in_path("go").is_none() {
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let go = GoGzip::build(tmp.path());
        let input = crate::data::rootfs_tar(1, 100, 20_000);
        for producer in [Producer::Pgzip, Producer::Gzip6] {
            let out = tmp.path().join(producer.name());
            let c = go
                .compress(producer, &out, |w| w.write_all(&input))
                .expect("compress");
            let gz = std::fs::read(&out).expect("read");
            assert_eq!(c.size, gz.len() as u64);
            assert_eq!(c.digest, format!("sha256:{:x}", Sha256::digest(&gz)));
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut back)
                .expect("gunzip");
            assert!(back == input, "{} does not round-trip", producer.name());
        }
    }
}
