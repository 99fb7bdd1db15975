//! The adversarial probe, as tests: each module reproduces one finding of a hostile-local-user
//! probe of the emulator (a slow or idle connection flood, loose file modes, path-scoped
//! tokens, `.`/`..` ids, error shapes, malformed property bags) and checks the emulator now
//! holds. Loopback only, every port 0; the `kill -9` durability count is `it::durability`.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "../it/support.rs"]
#[allow(dead_code)]
mod support;

mod error_shapes;
mod file_modes;
mod http;
mod ids;
mod listeners;
mod property_bags;
mod scoped_tokens;
