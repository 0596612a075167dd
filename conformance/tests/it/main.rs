//! The one integration-test binary of airlock-conformance.

// Boots airlock's registry in-process on 127.0.0.1:0 over a store in a temporary directory.
mod server;
// Every conformance check as its own test, named after the spec's endpoint id.
mod spec;
// skopeo copies an OCI layout into airlock and back out byte-exact; inspect and list-tags.
mod interop_skopeo;
// containerd 1.6 pulls from airlock directly and as a docker.io mirror (`?ns=docker.io`).
mod interop_containerd;
// Helpers for the real-client tests: finding binaries, running them, skipping loudly.
mod tools;
