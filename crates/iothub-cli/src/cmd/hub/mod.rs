//! `iothub hub …`: act as the service against a hub's REST API (issue 5 point 4): the local
//! emulator by default, any IoT Hub with a service connection string.

mod c2d;
mod invoke;
mod monitor;
mod service;
mod twin;

use std::process::ExitCode;

use anyhow::Context;

use self::service::ServiceClient;
use super::Global;
use crate::args::{HubArgs, HubCommand};

/// Runs a `hub` subcommand.
pub(crate) fn run(args: &HubArgs, global: Global) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let client = ServiceClient::resolve(&args.service)?;
        match &args.command {
            HubCommand::Monitor(a) => monitor::run(&client, a, global).await,
            HubCommand::Invoke(a) => invoke::run(&client, a, global).await,
            HubCommand::C2d(a) => c2d::run(&client, a, global).await,
            HubCommand::Twin(a) => twin::run(&client, a, global).await,
        }
    })
}
