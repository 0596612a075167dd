#!/usr/bin/env python3
"""Writes the OCI layout the golden fixtures are made from (tools/golden/make.sh).

The layers are the committed gzip fixtures (Go compress/gzip, pgzip, flate2/zlib-rs), so the
layout is the same bytes on every run and machine: configs and manifests are written with sorted
keys and no whitespace, tars with fixed names, modes and times.

    make_layout.py REPO_ROOT OUT_DIR
"""
import hashlib
import io
import json
import os
import random
import sys
import tarfile

root, out = sys.argv[1], sys.argv[2]
blobs = os.path.join(out, "blobs", "sha256")
os.makedirs(blobs, exist_ok=True)


def put(data: bytes) -> str:
    hexd = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, hexd), "wb") as f:
        f.write(data)
    return "sha256:" + hexd


def desc(media_type: str, data: bytes, **extra) -> dict:
    d = {"mediaType": media_type, "digest": put(data), "size": len(data)}
    d.update(extra)
    return d


def canon(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def fixture(path: str) -> bytes:
    with open(os.path.join(root, "store", "tests", "fixtures", path), "rb") as f:
        return f.read()


def plain_tar(seed: int, files: int) -> bytes:
    rng = random.Random(seed)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for i in range(files):
            size = rng.randrange(100, 40000)
            data = bytes(rng.getrandbits(8) for _ in range(size // 4)) * 4
            info = tarfile.TarInfo(f"opt/golden/{seed}/file{i:03}.bin")
            info.size = len(data)
            info.mtime = 1700000000
            info.mode = 0o644
            info.uid = info.gid = 0
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
TAR = "application/vnd.oci.image.layer.v1.tar"


def image(name: str, layers: list, platform=("linux", "amd64")) -> dict:
    layer_descs = [desc(mt, data) for mt, data in layers]
    config = canon({
        "architecture": platform[1],
        "os": platform[0],
        "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in layer_descs]},
        "config": {"Labels": {"golden": name}},
    })
    manifest = canon({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", config),
        "layers": layer_descs,
    })
    return desc("application/vnd.oci.image.manifest.v1+json", manifest)


base = [
    (GZ, fixture("go/gzip_6.gz")),
    (GZ, fixture("go/pgzip_-1_65536.gz")),
    (GZ, fixture("flate2/zlib-rs-l6.tar.gz")),
]
v1 = image("1.0", base + [(GZ, fixture("go/gzip_1_flush10000.gz")), (TAR, plain_tar(1, 12))])
# 1.1: the same tar as 1.0's fourth layer, compressed by another Go level; a new plain layer.
v11 = image("1.1", base + [(GZ, fixture("go/gzip_1.gz")), (TAR, plain_tar(2, 12)),
                           (GZ, fixture("go/pgzip_1_65536.gz"))])
arm = image("1.1-arm64", [(GZ, fixture("go/gzip_9.gz"))], platform=("linux", "arm64"))
amd = dict(v11, platform={"architecture": "amd64", "os": "linux"})
arm = dict(arm, platform={"architecture": "arm64", "os": "linux"})
multi = canon({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [amd, arm],
})
multi_desc = desc("application/vnd.oci.image.index.v1+json", multi)
# An SBOM of 1.0, found through the referrers API.
empty = desc("application/vnd.oci.empty.v1+json", b"{}")
sbom = canon({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "artifactType": "application/spdx+json",
    "config": empty,
    "layers": [desc("application/spdx+json", canon({"spdxVersion": "SPDX-2.3", "name": "golden"}))],
    "subject": {k: v1[k] for k in ("mediaType", "digest", "size")},
})
sbom_desc = desc("application/vnd.oci.image.manifest.v1+json", sbom)

ref = "org.opencontainers.image.ref.name"
index = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [
        dict(v1, annotations={ref: "1.0"}),
        dict(multi_desc, annotations={ref: "1.1"}),
        sbom_desc,
    ],
}
with open(os.path.join(out, "index.json"), "wb") as f:
    f.write(canon(index))
with open(os.path.join(out, "oci-layout"), "wb") as f:
    f.write(canon({"imageLayoutVersion": "1.0.0"}))
