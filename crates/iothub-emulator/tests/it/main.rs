//! Integration tests: the emulator on loopback port 0, real MQTT clients.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod amqp_c2d;
mod amqp_events;
mod amqp_negative;
mod amqp_support;
mod amqp_token_expiry;
mod domains;
mod durability;
mod file_upload;
mod file_upload_external;
mod negative;
mod service_api;
mod service_bench;
mod support;
mod telemetry;
mod transports;
