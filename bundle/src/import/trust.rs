//! Whether an import may go on, decided before anything is written: the signature of the
//! bundle index, checked with the keys the site trusts (`[trust]` of airlock.toml).
//!
//! The signatures met are every volume's copy, the bundle's `NAME.index.airlock.minisig` when
//! given among the paths and no volume carries an intact copy, and the one an earlier run of
//! the same import saved. They must all agree:
//! - one by a trusted key that verifies over the index the import uses, and none by a trusted
//!   key that does not: the bundle is trusted, and every volume given must name that very
//!   index in its header (a volume naming another index is refused, naming it);
//! - one by a trusted key that does not verify, or a signature section intact by its check but
//!   not a signature: tampering; refused always, even with `allow_unsigned`;
//! - only signatures by keys the site does not list, or none: refused unless
//!   `allow_unsigned`, and then imported unverified (the outcome says so).

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use crate::{
    error::{Error, Result, io_error},
    index::BundleIndex,
    sign::{HashedRange, KeyId, SignatureText, TrustedKey, TrustedKeys},
    volume::{SignatureCopy, VolumeReader},
};

/// What an import accepts (the site's `[trust]`, and `--allow-unsigned`).
#[derive(Clone, Debug, Default)]
pub struct Trust {
    /// Keys whose signatures the site trusts.
    pub keys: TrustedKeys,
    /// Import bundles that are unsigned, or signed by a key not in `keys`, unverified. A
    /// signature by a trusted key that does not verify is refused all the same.
    pub allow_unsigned: bool,
}

impl Trust {
    /// Accepts every bundle that carries no bad signature, verifying none (tests, tools).
    pub fn allow_unsigned() -> Trust {
        Trust {
            keys: TrustedKeys::default(),
            allow_unsigned: true,
        }
    }
}

/// Who signed a bundle, as its import found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// Signed by a trusted key, and the signature verifies.
    Trusted {
        /// The key's id.
        key_id: KeyId,
        /// Where the site lists the key (a file, or inline in airlock.toml).
        key: String,
        /// The signature's trusted comment (signed with it).
        comment: String,
    },
    /// Signed by a key the site does not list: not verified, imported because unsigned bundles
    /// are allowed.
    NotTrusted {
        /// The key's id.
        key_id: KeyId,
        /// The signature's trusted comment (unverified).
        comment: String,
    },
    /// Not signed; imported because unsigned bundles are allowed.
    Unsigned,
}

impl std::fmt::Display for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signer::Trusted {
                key_id,
                key,
                comment,
            } => write!(
                f,
                "signed by key {key_id} (trusted: {key}), verified; trusted comment: {comment}"
            ),
            Signer::NotTrusted { key_id, comment } => write!(
                f,
                "signed by key {key_id}, which [trust] does not list: NOT verified (allowed by \
                 --allow-unsigned); its comment: {comment}"
            ),
            Signer::Unsigned => f.write_str("unsigned: NOT verified (allowed by --allow-unsigned)"),
        }
    }
}

/// The index bytes an import uses: a range of a file.
#[derive(Debug, Clone)]
pub(super) struct IndexBytes {
    /// The file holding them.
    pub path: PathBuf,
    /// Where they start.
    pub offset: u64,
    /// How many.
    pub len: u64,
    /// BLAKE3 of them as the volume headers name it, when known.
    pub check: Option<[u8; 32]>,
    /// In words, for messages: "app.001.airlock (volume 1)".
    pub label: String,
}

impl IndexBytes {
    /// The index copy of volume `v`, when intact.
    pub(super) fn of_volume(v: &VolumeReader) -> Option<IndexBytes> {
        let (offset, len) = v.index_range()?;
        Some(IndexBytes {
            path: v.path().to_owned(),
            offset,
            len,
            check: Some(v.header().index_check),
            label: format!("{} (volume {})", v.path().display(), v.header().number),
        })
    }

    /// A whole index file.
    pub(super) fn of_file(
        path: &Path,
        check: Option<[u8; 32]>,
        label: String,
    ) -> Result<IndexBytes> {
        let len = std::fs::metadata(path).map_err(io_error(path))?.len();
        Ok(IndexBytes {
            path: path.to_owned(),
            offset: 0,
            len,
            check,
            label,
        })
    }

    /// Verifies `sig` with `key` over these bytes, read once more and checked to be the bytes
    /// decoded (their BLAKE3); returns that BLAKE3.
    fn verify(
        &self,
        sig: &SignatureText,
        key: &TrustedKey,
    ) -> std::result::Result<[u8; 32], String> {
        let file = File::open(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let mut range = HashedRange::new(&file, self.offset, self.len);
        sig.verify(key, &mut range)?;
        let hash = range.hash();
        match self.check {
            Some(c) if c != hash => Err("the index bytes changed while they were read".into()),
            _ => Ok(hash),
        }
    }
}

/// A signature met: where, and what it is.
#[derive(Debug)]
struct Met {
    label: String,
    parsed: std::result::Result<SignatureText, String>,
}

/// The verdict on one bundle: who signed it, the signature to keep with the import's state,
/// and (when trusted) the BLAKE3 of the index every volume must name.
#[derive(Debug)]
pub(super) struct Verdict {
    pub signer: Signer,
    pub signature: Option<Vec<u8>>,
    pub signed_check: Option<[u8; 32]>,
}

/// Decides whether the bundle of `index` (read from `bytes`) may be imported; an error says why
/// not and what to do. `files` are `.minisig` files given among the paths (path, bytes),
/// `saved` the signature an earlier run kept.
pub(super) fn check(
    index: &BundleIndex,
    bytes: &IndexBytes,
    volumes: &[VolumeReader],
    files: &[(PathBuf, Vec<u8>)],
    saved: Option<(PathBuf, Vec<u8>)>,
    trust: &Trust,
) -> Result<Verdict> {
    let bundle = format!("bundle {} ({})", index.name, index.bundle_id);
    let refuse = |what: String| Error::SignatureRefused {
        bundle: bundle.clone(),
        what,
    };
    let mut met: Vec<Met> = Vec::new();
    let mut damaged: Vec<String> = Vec::new();
    let mut seen: Vec<Vec<u8>> = Vec::new();
    for v in volumes {
        let label = format!("{} (volume {})", v.path().display(), v.header().number);
        match v.signature() {
            SignatureCopy::Unsigned => {}
            SignatureCopy::Damaged(why) => damaged.push(format!("{label}: {why}")),
            SignatureCopy::Present(sig) => {
                if !seen.contains(sig) {
                    seen.push(sig.clone());
                    met.push(Met {
                        label,
                        parsed: SignatureText::parse(sig),
                    });
                }
            }
        }
    }
    if met.is_empty() {
        let wanted = crate::names::signature_file_name(&index.name);
        let given = files
            .iter()
            .filter(|(p, _)| p.file_name().is_some_and(|n| n.to_string_lossy() == wanted));
        for (path, sig) in given.chain(saved.as_ref()) {
            if let Ok(parsed) = SignatureText::parse(sig) {
                met.push(Met {
                    label: path.display().to_string(),
                    parsed: Ok(parsed),
                });
                break;
            }
        }
    }
    // A section intact by its own check that is not a signature was written so on purpose.
    if let Some(m) = met.iter().find(|m| m.parsed.is_err()) {
        let why = m.parsed.as_ref().err().cloned().unwrap_or_default();
        return Err(refuse(format!(
            "{} carries a signature section that is intact but not a minisign signature ({why}): \
             the volume was altered after it was written; refused even with --allow-unsigned; \
             get this volume again from the vendor",
            m.label
        )));
    }
    let mut good: Option<(&SignatureText, &TrustedKey, [u8; 32])> = None;
    for m in &met {
        let Ok(sig) = &m.parsed else { continue };
        let Some(key) = trust.keys.find(sig.key_id()) else {
            continue;
        };
        match bytes.verify(sig, key) {
            Ok(hash) => {
                good.get_or_insert((sig, key, hash));
            }
            Err(why) => {
                return Err(refuse(format!(
                    "the signature in {} by trusted key {} (from {}) does not verify over the \
                     bundle index in {} ({why}): the bundle was altered after it was signed; \
                     refused even with --allow-unsigned; get the bundle again from its vendor",
                    m.label,
                    sig.key_id(),
                    key.source,
                    bytes.label
                )));
            }
        }
    }
    if let Some((sig, key, hash)) = good {
        for v in volumes {
            if v.header().index_check != hash {
                return Err(refuse(format!(
                    "{} (volume {}) names another bundle index in its header than the one \
                     signed by key {}: it was not written with this bundle, or it was altered; \
                     give this bundle's own volume {} instead",
                    v.path().display(),
                    v.header().number,
                    sig.key_id(),
                    v.header().number
                )));
            }
        }
        return Ok(Verdict {
            signer: Signer::Trusted {
                key_id: sig.key_id(),
                key: key.source.clone(),
                comment: sig.trusted_comment().to_owned(),
            },
            signature: Some(sig.as_bytes().to_vec()),
            signed_check: Some(hash),
        });
    }
    let trusted_list = if trust.keys.is_empty() {
        "airlock.toml lists no trusted key ([trust] keys)".to_owned()
    } else {
        let ids: Vec<String> = trust
            .keys
            .keys()
            .iter()
            .map(|k| k.key_id().to_string())
            .collect();
        format!("airlock.toml [trust] lists key(s) {}", ids.join(", "))
    };
    if let Some(Ok(sig)) = met.first().map(|m| &m.parsed) {
        if trust.allow_unsigned {
            return Ok(Verdict {
                signer: Signer::NotTrusted {
                    key_id: sig.key_id(),
                    comment: sig.trusted_comment().to_owned(),
                },
                signature: None,
                signed_check: None,
            });
        }
        return Err(refuse(format!(
            "{} is signed by key {}, which this site does not trust ({trusted_list}): if that is \
             your vendor's key, list its public key (the .pub file, or the RW... line) in \
             airlock.toml [trust] keys; to import it unverified, pass --allow-unsigned",
            met[0].label,
            sig.key_id()
        )));
    }
    if trust.allow_unsigned {
        return Ok(Verdict {
            signer: Signer::Unsigned,
            signature: None,
            signed_check: None,
        });
    }
    if !damaged.is_empty() {
        return Err(refuse(format!(
            "its volumes say it is signed, but no signature given is readable ({}): give \
             another volume of the bundle or its {} file, or pass --allow-unsigned to import \
             it unverified",
            damaged.join("; "),
            crate::names::signature_file_name(&index.name)
        )));
    }
    let first = volumes
        .first()
        .map_or_else(|| bytes.label.clone(), |v| v.path().display().to_string());
    Err(refuse(format!(
        "{first} is not signed, and this site imports only bundles signed by a key it trusts \
         ({trusted_list}): ask the vendor for a bundle made with `airlock export --sign KEY`, or \
         pass --allow-unsigned to import it unverified"
    )))
}
