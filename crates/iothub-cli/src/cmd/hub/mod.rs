//! `iothub hub …`: act as the service against a hub's REST API (issue 5 point 4): the local
//! emulator by default, any IoT Hub with a service connection string.

mod c2d;
mod enrollment;
mod identity;
mod identity_remote;
mod invoke;
mod monitor;
pub(crate) mod service;
mod twin;

use std::process::ExitCode;

use anyhow::Context;
use iothub_emulator::hub::provisioning::EnrollmentKind;

use self::service::ServiceClient;
use super::Global;
use crate::args::{HubArgs, HubCommand};

/// Runs a `hub` subcommand.
pub(crate) fn run(args: &HubArgs, global: Global) -> anyhow::Result<ExitCode> {
    if let HubCommand::Identity(a) = &args.command
        && args.service.hub_connection_string.is_none()
    {
        return identity::run(&args.service, a, global);
    }
    match &args.command {
        HubCommand::Enrollment(a) => {
            return enrollment::run(&args.service, EnrollmentKind::Individual, a, global);
        }
        HubCommand::EnrollmentGroup(a) => {
            return enrollment::run(&args.service, EnrollmentKind::Group, a, global);
        }
        _ => {}
    }
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
            HubCommand::Identity(a) => identity_remote::run(&client, a, global).await,
            HubCommand::Enrollment(_) | HubCommand::EnrollmentGroup(_) => {
                unreachable!("handled above")
            }
        }
    })
}
