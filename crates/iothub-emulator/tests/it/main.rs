//! Integration tests: the emulator on loopback port 0, real MQTT clients.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod domains;
mod durability;
mod file_upload;
mod negative;
mod service_api;
mod service_bench;
mod support;
mod telemetry;
mod transports;
