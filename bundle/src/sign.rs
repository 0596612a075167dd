//! Signatures of bundle indexes, in minisign's formats (the `minisign` crate): Ed25519 keys,
//! secret keys optionally encrypted with a password (scrypt), and signature files
//! (`NAME.index.airlock.minisig`) over a BLAKE2b-512 prehash of the index bytes, with a
//! trusted comment that is signed too. Debian's `minisign` CLI verifies what this module
//! writes (`minisign -Vm NAME.index.airlock -p key.pub`) and makes keys it reads
//! (`minisign -G`).
//!
//! The index bytes are what a signature covers: they hold every reference and tag, every
//! manifest and blob description, and the ids of every chunk of every frame; chunks are
//! content-addressed (an id is the BLAKE3 of the chunk's bytes, checked on import) and every
//! blob is checked against its digest before it is committed, so a valid signature of the index
//! pins everything an import makes the site serve.
//!
//! Everything here reads hostile input: key and signature texts are bounded
//! ([`MAX_KEY_FILE_BYTES`], [`MAX_SIGNATURE_BYTES`]) and parsed without panicking.

use std::{
    fmt,
    fs::File,
    io::{Read, Seek, SeekFrom},
    path::{Path, PathBuf},
};

use base64::Engine as _;

use crate::error::{Error, Result, io_error};

/// Suffix of a signature file: `NAME.index.airlock.minisig`.
pub const SIGNATURE_SUFFIX: &str = ".minisig";
/// A signature (a volume's section or a `.minisig` file) larger than this is refused unread;
/// what airlock writes is about 400 bytes.
pub const MAX_SIGNATURE_BYTES: u64 = 2048;
/// A key file larger than this is refused unread (a minisign key file is under 300 bytes).
pub const MAX_KEY_FILE_BYTES: u64 = 4096;
/// Longest trusted comment airlock writes (minisign's own limit is 1024 bytes).
const MAX_TRUSTED_COMMENT: usize = 400;

/// A minisign key id: 8 random bytes naming a key pair, shown as minisign shows it (16
/// uppercase hex digits, as in `untrusted comment: minisign public key 0123456789ABCDEF`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    fn from_slice(bytes: &[u8]) -> KeyId {
        let mut id = [0u8; 8];
        let n = bytes.len().min(8);
        id[..n].copy_from_slice(&bytes[..n]);
        KeyId(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

fn key_error(path: &Path, what: impl Into<String>) -> Error {
    Error::Key {
        path: path.to_owned(),
        what: what.into(),
    }
}

/// Reads a small text file, refusing one over `max` bytes without reading it whole.
fn read_small_text(path: &Path, max: u64, what: &str) -> Result<String> {
    let file = File::open(path).map_err(io_error(path))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error(path))?;
    if bytes.len() as u64 > max {
        return Err(key_error(
            path,
            format!("larger than {max} bytes: not a {what}"),
        ));
    }
    String::from_utf8(bytes).map_err(|_| key_error(path, format!("not UTF-8 text: not a {what}")))
}

/// A freshly generated key pair, as the text of its two files.
#[derive(Clone)]
pub struct KeyPair {
    /// Its id.
    pub key_id: KeyId,
    /// The public key file (`key.pub`): a comment line and the key in base64.
    pub public: String,
    /// The secret key file (`key.sec`), encrypted with the password given, if any.
    pub secret: String,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// Generates a key pair; with a password, the secret key is encrypted with it (scrypt, as
    /// minisign does), else it is stored unencrypted (minisign's `-W`).
    pub fn generate(password: Option<&str>) -> Result<KeyPair> {
        let failed = |e: minisign::PError| Error::Signing {
            what: format!("generating a key pair: {e}"),
        };
        let pair = match password {
            Some(p) => minisign::KeyPair::generate_encrypted_keypair(Some(p.to_owned())),
            None => minisign::KeyPair::generate_unencrypted_keypair(),
        }
        .map_err(failed)?;
        let key_id = KeyId::from_slice(pair.pk.keynum());
        let public = pair.pk.to_box().map_err(failed)?.into_string();
        let comment = if password.is_some() {
            "minisign encrypted secret key (airlock)"
        } else {
            "minisign secret key, not encrypted (airlock)"
        };
        let secret = pair.sk.to_box(Some(comment)).map_err(failed)?.into_string();
        Ok(KeyPair {
            key_id,
            public,
            secret,
        })
    }
}

/// A secret key file read but not yet unlocked: whether it needs a password is known before
/// asking for one.
pub struct SecretKeyFile {
    path: PathBuf,
    text: String,
    bytes: Vec<u8>,
    key_id: KeyId,
    encrypted: bool,
}

impl fmt::Debug for SecretKeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKeyFile")
            .field("path", &self.path)
            .field("encrypted", &self.encrypted)
            .finish_non_exhaustive()
    }
}

/// Byte offsets in a decoded minisign secret key: signature algorithm (2), KDF algorithm (2),
/// checksum algorithm (2), salt (32), ops limit (8), mem limit (8), key id (8, encrypted with
/// the rest when the key is), secret key (64), checksum (32).
const SECRET_KEY_BYTES: usize = 2 + 2 + 2 + 32 + 8 + 8 + 8 + 64 + 32;

impl SecretKeyFile {
    /// Reads a minisign secret key file (`airlock key generate`, or `minisign -G`).
    pub fn read(path: &Path) -> Result<SecretKeyFile> {
        let text = read_small_text(path, MAX_KEY_FILE_BYTES, "minisign secret key")?;
        let mut lines = text.lines();
        let comment = lines.next().unwrap_or("");
        let encoded = lines.next().unwrap_or("").trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .filter(|b| b.len() == SECRET_KEY_BYTES && comment.starts_with("untrusted comment:"));
        let Some(bytes) = bytes else {
            let hint = if encoded.len() == 56 && encoded.starts_with("RW") {
                " (this is a public key: sign with the secret key, e.g. key.sec)"
            } else {
                ""
            };
            return Err(key_error(path, format!("not a minisign secret key{hint}")));
        };
        if &bytes[0..2] != b"Ed" {
            return Err(key_error(
                path,
                "not an Ed25519 minisign secret key (unknown signature algorithm)",
            ));
        }
        let encrypted = match &bytes[2..4] {
            [0, 0] => false,
            b"Sc" => true,
            _ => {
                return Err(key_error(
                    path,
                    "encrypted with a key derivation minisign does not define",
                ));
            }
        };
        // The key id is encrypted with the key: read it once unlocked, or, unencrypted, here.
        let key_id = KeyId::from_slice(&bytes[54..62]);
        Ok(SecretKeyFile {
            path: path.to_owned(),
            text,
            bytes,
            key_id,
            encrypted,
        })
    }

    /// Whether the key is encrypted: [`SecretKeyFile::unlock`] needs its password.
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Decrypts the key with `password` (ignored for a key that is not encrypted).
    pub fn unlock(&self, password: Option<&str>) -> Result<SigningKey> {
        let key_box = minisign::SecretKeyBox::from_string(&self.text)
            .map_err(|e| key_error(&self.path, e.to_string()))?;
        let sk = if self.encrypted {
            let Some(password) = password else {
                return Err(key_error(
                    &self.path,
                    "the key is encrypted and no password was given",
                ));
            };
            key_box
                .into_secret_key(Some(password.to_owned()))
                .map_err(|e| match e.kind() {
                    minisign::ErrorKind::Verify => key_error(
                        &self.path,
                        "wrong password for this key (its checksum does not match once decrypted)",
                    ),
                    _ => key_error(&self.path, e.to_string()),
                })?
        } else if self.bytes[SECRET_KEY_BYTES - 32..].iter().all(|&b| b == 0) {
            // `minisign -W` (0.11) leaves the checksum of an unencrypted key empty; a damaged
            // key is still found: its signature would not verify with its public half.
            minisign::SecretKey::from_bytes(&self.bytes)
                .map_err(|e| key_error(&self.path, format!("damaged key: {e}")))?
        } else {
            key_box
                .into_unencrypted_secret_key()
                .map_err(|e| key_error(&self.path, format!("damaged key: {e}")))?
        };
        let pk = minisign::PublicKey::from_secret_key(&sk)
            .map_err(|e| key_error(&self.path, e.to_string()))?;
        let key_id = KeyId::from_slice(sk.keynum());
        debug_assert!(self.encrypted || key_id == self.key_id);
        Ok(SigningKey { sk, pk, key_id })
    }
}

/// An unlocked secret key, ready to sign.
pub struct SigningKey {
    sk: minisign::SecretKey,
    pk: minisign::PublicKey,
    key_id: KeyId,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The key's id.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The public key file's text of this key (what a site lists in `[trust]`).
    pub fn public_key_text(&self) -> Result<String> {
        self.pk
            .to_box()
            .map(|b| b.into_string())
            .map_err(|e| Error::Signing {
                what: e.to_string(),
            })
    }

    /// Signs `data` with `trusted_comment` (signed too; control characters are replaced and it
    /// is cut to a few hundred bytes); returns the text of a `.minisig` file, checked against
    /// the key's public half before it is returned.
    pub fn sign(&self, data: &[u8], trusted_comment: &str) -> Result<Vec<u8>> {
        let trusted: String = trusted_comment
            .chars()
            .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
            .scan(0usize, |len, c| {
                *len += c.len_utf8();
                (*len <= MAX_TRUSTED_COMMENT).then_some(c)
            })
            .collect();
        let untrusted = format!("signature from airlock, minisign key {}", self.key_id);
        let signature = minisign::sign(
            Some(&self.pk),
            &self.sk,
            data,
            Some(trusted.trim()),
            Some(&untrusted),
        )
        .map_err(|e| Error::Signing {
            what: e.to_string(),
        })?;
        Ok(signature.into_string().into_bytes())
    }
}

/// A public key a site trusts, and where it was listed.
#[derive(Clone)]
pub struct TrustedKey {
    key: minisign::PublicKey,
    key_id: KeyId,
    /// Where it comes from, for messages: a file, or `inline` with the config's place.
    pub source: String,
}

impl fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedKey")
            .field("key_id", &self.key_id)
            .field("source", &self.source)
            .finish()
    }
}

impl TrustedKey {
    /// Reads a minisign public key file (`key.pub`: a comment line, then the key).
    pub fn read_file(path: &Path) -> Result<TrustedKey> {
        let text = read_small_text(path, MAX_KEY_FILE_BYTES, "minisign public key")?;
        // The key is the second line of a key file; a file holding only the key line is taken too.
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .unwrap_or("");
        TrustedKey::parse(line, path.display().to_string()).map_err(|what| key_error(path, what))
    }

    /// Parses a public key given inline, as `minisign -G` prints it (`RW...`, 56 characters).
    pub fn parse(line: &str, source: String) -> std::result::Result<TrustedKey, String> {
        let line = line.trim();
        if line.starts_with("untrusted comment:") || line.contains("secret key") {
            return Err("not a minisign public key (a comment or a secret key?)".into());
        }
        if line.len() != 56 {
            return Err(format!(
                "not a minisign public key: expected 56 base64 characters (RW...), found {}",
                line.len()
            ));
        }
        let key = minisign::PublicKey::from_base64(line)
            .map_err(|e| format!("not a minisign public key: {e}"))?;
        let bytes = key.to_bytes();
        if bytes.get(..2) != Some(b"Ed".as_slice()) {
            return Err("not an Ed25519 minisign public key".into());
        }
        Ok(TrustedKey {
            key_id: KeyId::from_slice(key.keynum()),
            key,
            source,
        })
    }

    /// The key's id.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }
}

/// The public keys a site trusts (`[trust] keys` of airlock.toml).
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys(Vec<TrustedKey>);

impl TrustedKeys {
    /// Keys as listed.
    pub fn new(keys: Vec<TrustedKey>) -> TrustedKeys {
        TrustedKeys(keys)
    }

    /// The trusted key of id `id`, if any.
    pub fn find(&self, id: KeyId) -> Option<&TrustedKey> {
        self.0.iter().find(|k| k.key_id == id)
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The keys.
    pub fn keys(&self) -> &[TrustedKey] {
        &self.0
    }
}

/// A minisign signature file's content, parsed (not verified).
#[derive(Clone)]
pub struct SignatureText {
    signature: minisign::SignatureBox,
    text: Vec<u8>,
    key_id: KeyId,
    trusted_comment: String,
}

impl fmt::Debug for SignatureText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureText")
            .field("key_id", &self.key_id)
            .field("trusted_comment", &self.trusted_comment)
            .finish()
    }
}

impl SignatureText {
    /// Parses the text of a `.minisig` file; refuses legacy (not prehashed) signatures, which
    /// airlock never writes.
    pub fn parse(bytes: &[u8]) -> std::result::Result<SignatureText, String> {
        if bytes.len() as u64 > MAX_SIGNATURE_BYTES {
            return Err(format!(
                "a signature of {} bytes (at most {MAX_SIGNATURE_BYTES})",
                bytes.len()
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| "a signature that is not text")?;
        if text.lines().count() < 4 {
            return Err("not a minisign signature (fewer than 4 lines)".into());
        }
        let signature = minisign::SignatureBox::from_string(text)
            .map_err(|e| format!("not a minisign signature: {e}"))?;
        if !signature.is_prehashed() {
            return Err(
                "a legacy minisign signature (not prehashed), which airlock does not accept".into(),
            );
        }
        let trusted_comment = signature
            .trusted_comment()
            .map_err(|e| format!("not a minisign signature: {e}"))?;
        Ok(SignatureText {
            key_id: KeyId::from_slice(signature.keynum()),
            signature,
            text: bytes.to_vec(),
            trusted_comment,
        })
    }

    /// The id of the key that made it.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Its trusted comment (signed with the data; airlock writes the time, the index file's
    /// name and the bundle id there).
    pub fn trusted_comment(&self) -> &str {
        &self.trusted_comment
    }

    /// The file's bytes, as written.
    pub fn as_bytes(&self) -> &[u8] {
        &self.text
    }

    /// Verifies the signature and its trusted comment with `key` over `data`.
    pub fn verify(
        &self,
        key: &TrustedKey,
        data: impl Read + Seek,
    ) -> std::result::Result<(), String> {
        minisign::verify(&key.key, &self.signature, data, true, false, false)
            .map_err(|e| e.to_string())
    }
}

/// The bytes `len` bytes from `offset` of a file, read in order and hashed (BLAKE3) on the way,
/// so that a caller can check the bytes a signature was verified over are the bytes it
/// decoded.
#[derive(Debug)]
pub(crate) struct HashedRange<'a> {
    file: &'a File,
    start: u64,
    len: u64,
    pos: u64,
    hasher: blake3::Hasher,
}

impl<'a> HashedRange<'a> {
    pub(crate) fn new(file: &'a File, start: u64, len: u64) -> HashedRange<'a> {
        HashedRange {
            file,
            start,
            len,
            pos: 0,
            hasher: blake3::Hasher::new(),
        }
    }

    /// BLAKE3 of every byte read (in one pass from the start).
    pub(crate) fn hash(&self) -> [u8; 32] {
        *self.hasher.finalize().as_bytes()
    }
}

impl Read for HashedRange<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let left = self.len.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..n], self.start + self.pos)?;
        if got == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file ended before the index",
            ));
        }
        self.hasher.update(&buf[..got]);
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for HashedRange<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        // minisign seeks only to output the data again, which airlock never asks for.
        match to {
            SeekFrom::Start(0) => {
                self.pos = 0;
                self.hasher = blake3::Hasher::new();
                Ok(0)
            }
            _ => Err(std::io::Error::other("only a rewind is supported")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn keys(dir: &Path, password: Option<&str>) -> (PathBuf, PathBuf, KeyId) {
        let pair = KeyPair::generate(password).unwrap();
        let (p, s) = (dir.join("k.pub"), dir.join("k.sec"));
        std::fs::write(&p, &pair.public).unwrap();
        std::fs::write(&s, &pair.secret).unwrap();
        (p, s, pair.key_id)
    }

    #[test]
    fn a_signature_verifies_with_its_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let (p, s, id) = keys(dir.path(), None);
        let file = SecretKeyFile::read(&s).unwrap();
        assert!(!file.is_encrypted());
        let key = file.unlock(None).unwrap();
        assert_eq!(key.key_id(), id);
        let sig = key.sign(b"index bytes", "bundle x\nnext").unwrap();
        let text = SignatureText::parse(&sig).unwrap();
        assert_eq!(text.key_id(), id);
        assert_eq!(text.trusted_comment(), "bundle x?next");
        let trusted = TrustedKey::read_file(&p).unwrap();
        assert_eq!(trusted.key_id(), id);
        text.verify(&trusted, std::io::Cursor::new(b"index bytes"))
            .unwrap();
        let err = text
            .verify(&trusted, std::io::Cursor::new(b"index bytez"))
            .unwrap_err();
        assert!(err.contains("verification failed"), "{err}");
        let other = KeyPair::generate(None).unwrap();
        let line = other.public.lines().nth(1).unwrap();
        let other = TrustedKey::parse(line, "inline".into()).unwrap();
        assert!(
            text.verify(&other, std::io::Cursor::new(b"index bytes"))
                .is_err()
        );
    }

    #[test]
    fn an_encrypted_key_needs_its_password() {
        let dir = tempfile::tempdir().unwrap();
        let (_, s, id) = keys(dir.path(), Some("correct horse"));
        let file = SecretKeyFile::read(&s).unwrap();
        assert!(file.is_encrypted());
        let err = file.unlock(Some("wrong")).unwrap_err().to_string();
        assert!(err.contains("wrong password"), "{err}");
        assert!(file.unlock(None).is_err());
        assert_eq!(file.unlock(Some("correct horse")).unwrap().key_id(), id);
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        let dir = tempfile::tempdir().unwrap();
        let (p, _, _) = keys(dir.path(), None);
        let err = SecretKeyFile::read(&p).unwrap_err().to_string();
        assert!(err.contains("this is a public key"), "{err}");
        for bad in [
            &b""[..],
            b"untrusted comment: x\n",
            b"a\nb\nc\nd\n",
            &[0xff; 10],
        ] {
            assert!(SignatureText::parse(bad).is_err());
        }
        assert!(SignatureText::parse(&vec![b'a'; 5000]).is_err());
        assert!(TrustedKey::parse("RWQ", "x".into()).is_err());
        assert!(TrustedKey::parse(&"A".repeat(56), "x".into()).is_err());
    }
}
