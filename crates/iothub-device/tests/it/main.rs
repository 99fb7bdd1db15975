//! Integration tests of the device client: against a fault-injecting fake MQTT peer on
//! loopback, and (where noted) against the emulator.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod c2d;
mod emulator;
mod emulator_upload;
mod examples;
mod fake_hub;
mod methods;
mod provisioning;
mod proxy;
mod reliability;
mod telemetry;
mod transport;
mod twin;
mod upload;
