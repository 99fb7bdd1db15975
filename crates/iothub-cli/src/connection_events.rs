//! What the device-side commands (`iothub device …`) print while connected: each lost
//! connection and each refusal with its reason and the wait before the next attempt, and each
//! reconnect, in one format whatever the command.
//!
//! The lines go to stderr, so stdout stays the command's output. They are built from the
//! device client's typed reasons, whose messages name hosts, files and CONNACK codes but
//! never a key, a signature or a token.

use iothub_device::{
    ConnectRefusal, ConnectionState, CredentialError, DeviceClient, DisconnectReason, NetworkError,
};

/// Prints every later change of `client`'s connection (call it once connected).
pub(crate) fn print_changes(client: &DeviceClient) {
    let mut states = client.connection_state();
    // Only what happens from now on: the first connection was reported by the caller.
    states.mark_unchanged();
    tokio::spawn(async move {
        let mut down = false;
        while states.changed().await.is_ok() {
            let state = states.borrow_and_update().clone();
            if let Some(line) = describe(&state, &mut down) {
                eprintln!("{line}");
            }
        }
    });
}

/// The line for a state change; `down` remembers whether the connection was lost, so a
/// planned token renewal (no loss in between) prints nothing.
fn describe(state: &ConnectionState, down: &mut bool) -> Option<String> {
    match state {
        ConnectionState::Connected if *down => {
            *down = false;
            Some("reconnected".to_owned())
        }
        ConnectionState::Disconnected { reason, retry_in } => {
            *down = true;
            Some(format!(
                "{}; retrying in {:.1} s",
                reason_line(reason),
                retry_in.as_secs_f64()
            ))
        }
        _ => None,
    }
}

/// A lost connection or a refusal as one line, with what to check.
fn reason_line(reason: &DisconnectReason) -> String {
    let advice = match reason {
        DisconnectReason::Refused(ConnectRefusal::NotAuthorized) => "check the key/token",
        DisconnectReason::Refused(ConnectRefusal::ServerUnavailable) => {
            "the device may be disabled, or the hub is throttling connections"
        }
        DisconnectReason::Refused(_) => "check the connection string",
        DisconnectReason::Credentials(CredentialError::TokenExpired { .. }) => {
            "mint a new token with `iothub sas`, or use the device key"
        }
        DisconnectReason::Credentials(_) => "check the key/token",
        DisconnectReason::Network(NetworkError::Tls { .. }) => {
            "check --ca-file (the hub's CA must be trusted)"
        }
        DisconnectReason::Network(NetworkError::Dns { .. } | NetworkError::Tcp { .. }) => {
            "check the host, the port and that the hub is running"
        }
        _ => "the client reconnects by itself",
    };
    match reason {
        DisconnectReason::Refused(_) => format!("{reason} — {advice}"),
        _ => format!("connection lost: {reason} — {advice}"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use iothub_device::Request;

    use super::*;

    fn lost(reason: DisconnectReason) -> ConnectionState {
        ConnectionState::Disconnected {
            reason,
            retry_in: Duration::from_secs(10),
        }
    }

    #[test]
    fn prints_a_refusal_with_its_code_and_what_to_check() {
        let mut down = false;
        let line = describe(
            &lost(DisconnectReason::Refused(ConnectRefusal::NotAuthorized)),
            &mut down,
        );
        assert_eq!(
            line.as_deref(),
            Some(
                "connection refused by the hub: not authorized (CONNACK 5) — check the key/token; retrying in 10.0 s"
            )
        );
    }

    #[test]
    fn prints_a_loss_then_the_reconnect_and_nothing_for_a_renewal() {
        let mut down = false;
        assert_eq!(describe(&ConnectionState::Connecting, &mut down), None);
        assert_eq!(describe(&ConnectionState::Connected, &mut down), None);
        let line = describe(
            &lost(DisconnectReason::Timeout(Request::KeepAlive)),
            &mut down,
        )
        .unwrap();
        assert_eq!(
            line,
            "connection lost: no answer in time to keep-alive — the client reconnects by itself; retrying in 10.0 s"
        );
        assert_eq!(describe(&ConnectionState::Connecting, &mut down), None);
        assert_eq!(
            describe(&ConnectionState::Connected, &mut down).as_deref(),
            Some("reconnected")
        );
    }

    #[test]
    fn an_expired_token_line_names_its_expiry_not_the_token() {
        let mut down = false;
        let line = describe(
            &lost(DisconnectReason::Credentials(
                CredentialError::TokenExpired { expiry: 1000 },
            )),
            &mut down,
        )
        .unwrap();
        assert!(line.contains("expired at 1000"), "{line}");
        assert!(line.contains("iothub sas"), "{line}");
    }
}
