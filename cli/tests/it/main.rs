//! Integration tests of the `airlock` binary: real processes, real files, loopback only.

/// Shared helpers: running the binary, filling a store through the library.
mod common;
/// Configuration errors and precedence as the user sees them.
mod config;
/// `airlock serve`: starts, answers on loopback, stops on SIGTERM.
mod serve;
/// `airlock du`, `verify` and `gc` over stores built by the library, incl. damaged ones.
mod store_commands;
