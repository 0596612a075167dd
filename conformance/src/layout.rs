//! OCI image layouts on disk (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`), the format
//! skopeo copies from and to, so an interop test can compare what went in with what came out.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::{
    content::{Algorithm, Blob, Image, OCI_INDEX},
    error::Error,
};

/// The annotation naming an image in a layout's `index.json`.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Writes `images` into a new OCI layout at `dir`, each named by its reference (`tag`).
pub fn write_oci_layout(dir: &Path, images: &[(&str, &Image)]) -> Result<(), Error> {
    write(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let mut manifests = Vec::new();
    for (name, image) in images {
        for blob in image.blobs().chain([&image.manifest]) {
            write(&blob_path(dir, &blob.digest), &blob.bytes)?;
        }
        let mut descriptor = image.manifest.descriptor();
        descriptor["annotations"] = json!({ REF_NAME: name });
        manifests.push(descriptor);
    }
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    write(&dir.join("index.json"), index.to_string().as_bytes())
}

/// Reads the image named `name` from the OCI layout at `dir`, checking every blob's digest.
pub fn read_oci_layout(dir: &Path, name: &str) -> Result<Image, Error> {
    let index = read_json(&dir.join("index.json"))?;
    let entry = index["manifests"]
        .as_array()
        .and_then(|m| m.iter().find(|d| d["annotations"][REF_NAME] == name))
        .ok_or_else(|| Error::check(format!("{}: no image named {name}", dir.display())))?;
    let manifest = read_blob(dir, entry)?;
    let parsed: Value = serde_json::from_slice(&manifest.bytes)
        .map_err(|e| Error::check(format!("manifest {} is not JSON: {e}", manifest.digest)))?;
    let config = read_blob(dir, &parsed["config"])?;
    let layers = parsed["layers"]
        .as_array()
        .map(|layers| {
            layers
                .iter()
                .map(|d| read_blob(dir, d))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(Image {
        config,
        layers,
        manifest,
    })
}

fn read_blob(dir: &Path, descriptor: &Value) -> Result<Blob, Error> {
    let (Some(digest), Some(media_type)) = (
        descriptor["digest"].as_str(),
        descriptor["mediaType"].as_str(),
    ) else {
        return Err(Error::check(format!(
            "descriptor without digest or mediaType: {descriptor}"
        )));
    };
    let path = blob_path(dir, digest);
    let bytes = std::fs::read(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let algorithm = if digest.starts_with("sha512:") {
        Algorithm::Sha512
    } else {
        Algorithm::Sha256
    };
    let blob = Blob::with_algorithm(algorithm, media_type, bytes);
    if blob.digest != digest {
        return Err(Error::check(format!(
            "{}: content has digest {}",
            path.display(),
            blob.digest
        )));
    }
    Ok(blob)
}

fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    dir.join("blobs").join(algorithm).join(hex)
}

fn read_json(path: &Path) -> Result<Value, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::check(format!("{}: not JSON: {e}", path.display())))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.into(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::write(path, bytes).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::ImageBuilder;

    #[test]
    fn a_layout_reads_back_what_was_written() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("layout");
        let image = ImageBuilder::new().layers(2).build();
        write_oci_layout(&dir, &[("v1", &image)]).expect("write");
        let back = read_oci_layout(&dir, "v1").expect("read");
        assert_eq!(back.manifest, image.manifest);
        assert_eq!(back.config, image.config);
        assert_eq!(back.layers, image.layers);
        assert!(read_oci_layout(&dir, "v2").is_err());
    }
}
