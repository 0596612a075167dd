//! The one integration-test binary of airlock-conformance.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

// Boots airlock's registry in-process on 127.0.0.1:0 over a store in a temporary directory.
mod server;
// Every conformance check as its own test, named after the spec's endpoint id.
mod spec;
// Issue 13: each check fails against a registry that breaks its rule (one mutant at a time).
mod mutants;
// The mutants: airlock's router behind a middleware that breaks one rule of the spec.
mod wrong_registry;
// skopeo copies an OCI layout into airlock and back out byte-exact; inspect and list-tags.
mod interop_skopeo;
// containerd 1.6 pulls from airlock directly and as a docker.io mirror (`?ns=docker.io`).
mod interop_containerd;
// Issue 16: every check over HTTPS with Basic and token-flow logins; denied actions.
mod secured;
// Issue 16: skopeo and containerd logged in over HTTPS; what they are refused.
mod interop_secured;
// Helpers for the real-client tests: finding binaries, running them, skipping loudly.
mod tools;
