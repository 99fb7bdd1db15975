//! `iothub hub …`: act as the service against a hub's REST API (docs/rest-api.md): the local
//! emulator by default, any IoT Hub with a service connection string.

mod c2d;
mod connection_string;
mod consumer_group;
mod enrollment;
mod enrollment_remote;
mod identity;
mod identity_remote;
mod invoke;
mod monitor;
mod owner;
pub(crate) mod service;
mod twin;

use std::process::ExitCode;

use anyhow::Context;
use iothub_emulator::hub::provisioning::EnrollmentKind;

use self::service::ServiceClient;
use super::Global;
use crate::args::{HubArgs, HubCommand};

/// The emulator data dir the local commands use.
fn data_dir(service: &crate::args::HubService) -> anyhow::Result<std::path::PathBuf> {
    match &service.data_dir {
        Some(d) => Ok(d.clone()),
        None => crate::cmd::emulator_data_dir(),
    }
}

/// Runs a `hub` subcommand.
pub(crate) fn run(args: &HubArgs, global: Global) -> anyhow::Result<ExitCode> {
    if let HubCommand::ConnectionString(a) = &args.command {
        return connection_string::run(&args.service, a, global);
    }
    if let HubCommand::Identity(a) = &args.command
        && args.service.hub_connection_string.is_none()
        // A running emulator owns the database: fall through to its REST API below.
        && let owner::Owner::Nobody(_lock) = owner::of(&data_dir(&args.service)?)?
    {
        return identity::run(&args.service, a, global);
    }
    if let HubCommand::ConsumerGroup(a) = &args.command
        && args.service.hub_connection_string.is_none()
        && let owner::Owner::Nobody(_lock) = owner::of(&data_dir(&args.service)?)?
    {
        return consumer_group::run_local(&data_dir(&args.service)?, a, global);
    }
    let enrollments = match &args.command {
        HubCommand::Enrollment(a) => Some((EnrollmentKind::Individual, a)),
        HubCommand::EnrollmentGroup(a) => Some((EnrollmentKind::Group, a)),
        _ => None,
    };
    if let Some((kind, a)) = enrollments {
        if args.service.hub_connection_string.is_some() {
            return enrollment::run(&args.service, kind, a, global);
        }
        // Held for the whole command; with a running emulator, its REST API below.
        if let owner::Owner::Nobody(_lock) = owner::of(&data_dir(&args.service)?)? {
            return enrollment::run(&args.service, kind, a, global);
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Over AMQP (src/amqp/), to the local emulator or any hub: no REST client.
        if let HubCommand::Monitor(a) = &args.command {
            return monitor::run(&args.service, a, global).await;
        }
        if let HubCommand::C2d(a) = &args.command {
            return c2d::run(&args.service, a, global).await;
        }
        let client = ServiceClient::resolve(&args.service)?;
        match &args.command {
            HubCommand::Monitor(a) => monitor::run(&args.service, a, global).await,
            HubCommand::Invoke(a) => invoke::run(&client, a, global).await,
            HubCommand::C2d(a) => c2d::run(&args.service, a, global).await,
            HubCommand::Twin(a) => twin::run(&client, a, global).await,
            HubCommand::Identity(a) => identity_remote::run(&client, a, global).await,
            HubCommand::ConsumerGroup(a) => consumer_group::run(&client, a, global).await,
            // Only here while an emulator owns the data dir (see above).
            HubCommand::Enrollment(a) => {
                enrollment_remote::run(&client, EnrollmentKind::Individual, a, global).await
            }
            HubCommand::EnrollmentGroup(a) => {
                enrollment_remote::run(&client, EnrollmentKind::Group, a, global).await
            }
            // Answered above, before any hub is resolved.
            HubCommand::ConnectionString(a) => connection_string::run(&args.service, a, global),
        }
    })
}
