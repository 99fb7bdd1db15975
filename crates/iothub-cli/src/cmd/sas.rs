//! `iothub sas`: mint a SAS token offline, or derive a DPS device key (docs/protocol.md §2, §9).

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use iothub_proto::connection_string::{ConnectionString, ConnectionStringError, Credential};
use iothub_proto::sas::{
    DEFAULT_TOKEN_TTL_SECS, DERIVED_KEY_LEN, HmacSha256Signer, ResourceUri, SasToken,
    derive_device_key,
};

use super::Global;
use crate::args::SasArgs;

/// Runs `iothub sas`.
pub(crate) fn run(args: &SasArgs, global: Global) -> anyhow::Result<ExitCode> {
    let output = if args.derive_key {
        derived_key(args)?
    } else if let Some(cs) = &args.connection_string {
        token_for_connection_string(cs, expiry(args)?)?
    } else if let Some(resource) = &args.resource {
        let key = args.key.as_deref().context("--resource needs --key")?;
        token(
            ResourceUri::raw(resource),
            key,
            args.policy.as_deref(),
            expiry(args)?,
        )?
    } else {
        // clap's `mode` group guarantees one of the three.
        bail!("one of --connection-string, --resource or --derive-key is required");
    };
    print(&output, global)?;
    Ok(ExitCode::SUCCESS)
}

/// What `iothub sas` prints.
enum Output {
    Token {
        token: String,
        resource: String,
        expiry: u64,
    },
    Key {
        key: String,
    },
}

fn print(output: &Output, global: Global) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    match output {
        Output::Token {
            token,
            resource,
            expiry,
        } if global.json => {
            let value =
                serde_json::json!({ "token": token, "resource": resource, "expiry": expiry });
            writeln!(stdout, "{value}")?;
        }
        Output::Key { key } if global.json => {
            writeln!(stdout, "{}", serde_json::json!({ "key": key }))?
        }
        Output::Token { token, .. } => writeln!(stdout, "{token}")?,
        Output::Key { key } => writeln!(stdout, "{key}")?,
    }
    stdout.flush()
}

fn derived_key(args: &SasArgs) -> anyhow::Result<Output> {
    let group_key = args
        .group_key
        .as_deref()
        .context("--derive-key needs --group-key")?;
    let registration_id = args
        .registration_id
        .as_deref()
        .context("--derive-key needs --registration-id")?;
    let mut out = [0u8; DERIVED_KEY_LEN];
    let key =
        derive_device_key(group_key, registration_id, &mut out).context("invalid --group-key")?;
    Ok(Output::Key {
        key: key.to_owned(),
    })
}

fn token_for_connection_string(text: &str, expiry: u64) -> anyhow::Result<Output> {
    let cs = ConnectionString::parse(text)
        .map_err(|error| explain(text, error))
        .context("invalid --connection-string")?;
    let resource = cs.resource_uri();
    let (key, policy) = match cs.credential() {
        Credential::DeviceKey { key } | Credential::ModuleKey { key } => (key, None),
        Credential::DevicePolicyKey { policy, key }
        | Credential::ServicePolicyKey { policy, key } => (key, Some(policy)),
        Credential::Token { .. } => {
            bail!(
                "the connection string already carries a SharedAccessSignature; there is no key to sign with"
            )
        }
        Credential::X509 => {
            bail!("the connection string uses x509=true; there is no key to sign with")
        }
        _ => bail!("this kind of connection string cannot be used to sign a token"),
    };
    token(resource, key, policy, expiry)
}

fn token(
    resource: ResourceUri<'_>,
    key: &str,
    policy: Option<&str>,
    expiry: u64,
) -> anyhow::Result<Output> {
    let signer = HmacSha256Signer::from_base64(key).context("invalid SharedAccessKey")?;
    let token = SasToken::sign(resource, expiry, policy, &signer).context("signing failed")?;
    Ok(Output::Token {
        token: token.to_string(),
        resource: resource.to_string(),
        expiry,
    })
}

/// The expiry in Unix seconds: `--expiry`, or now + `--duration` (default one hour).
fn expiry(args: &SasArgs) -> anyhow::Result<u64> {
    if let Some(expiry) = args.expiry {
        return Ok(expiry);
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock is before 1970")?
        .as_secs();
    let duration = args.duration.unwrap_or(DEFAULT_TOKEN_TTL_SECS);
    now.checked_add(duration).context("--duration is too large")
}

/// Adds the offending key's name to position-only errors, so the message names the field.
fn explain(text: &str, error: ConnectionStringError) -> anyhow::Error {
    let at = |offset: usize| {
        let rest = text.get(offset..).unwrap_or("");
        rest.split([';', '='])
            .next()
            .unwrap_or("")
            .trim()
            .to_owned()
    };
    match error {
        ConnectionStringError::UnknownKey { offset } => {
            anyhow!("unknown key `{}` ({error})", at(offset))
        }
        ConnectionStringError::MalformedSegment { offset } => {
            anyhow!("segment `{}` has no `=` ({error})", at(offset))
        }
        other => anyhow!(other),
    }
}
