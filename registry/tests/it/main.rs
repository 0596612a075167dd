//! Integration tests of the registry's HTTP API over a temporary store: requests go through
//! `router(state).oneshot(..)`, except in `server`, which talks to a real listener. Tests are
//! named after the spec's endpoint ids (`end_2_...`) where one applies.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

/// A registry over a temporary store, request helpers and content builders.
mod support;

/// end-2, end-3: pulling blobs (whole, HEAD, Range, sha512) and the repository scoping of blobs.
mod pull;

/// end-4a .. end-6, end-11, end-13, end-14: monolithic and chunked pushes, sessions, mounts.
mod push;

/// end-3, end-7a, end-7b: manifests of every media type, reference checks, limits, subjects.
mod manifests;

/// end-8a, end-8b, the catalog, end-12a, end-12b: listings, pagination and referrers.
mod listing;

/// end-9, end-10: deleting tags, manifests and blobs.
mod delete;

/// containerd's `ns` mirror parameter, read-only mode, restarts with open upload sessions.
mod modes;

/// Issue 15: names without `ns`: short paths of added images, pushes, ambiguous paths, access.
mod names;

/// Random requests thrown at the router: never a 5xx, never a panic.
mod fuzz;

/// Issue 14: finished uploads are staged: pulls, re-pushes, mounts, refusals, delete and GC.
mod staged;

/// A real server from `serve` on 127.0.0.1, driven by hyper-util's client with a 64 MiB blob.
mod server;

/// Issue 14: concurrent pulls of one uncached gzip layer on a real server share one rebuild.
mod fanout;

/// Issue 16: accounts, access rules, the token flow, mounts across access.
mod auth;

/// Issue 16: blob size, session, connection and body limits, slowloris, shutdown.
mod limits;

/// Issue 16: HTTPS with HTTP/2 by ALPN, TLS 1.2 and 1.3, certificate reload.
mod tls;

/// Issue 15: /healthz, /readyz, and the Prometheus metrics on their own listener after pushes
/// and pulls on a real server.
mod ops;
