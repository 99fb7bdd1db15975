//! SASL for the AMQP listeners (docs/amqp.md "Authentication"): the three mechanisms IoT Hub's
//! service clients ask for, and what each leaves for the links to check.
//!
//! - `MSSBCBS` (.NET) and `ANONYMOUS` (Python, Node) carry no credential: the client then puts
//!   a token on the `$cbs` node before attaching links.
//! - `PLAIN` carries one: user `{policy}@sas.root.{hub}` and a SAS token as the password (the
//!   az CLI's redirect probe, uamqp's URL form). The token is kept for the connection and is
//!   checked, like a CBS token, by every link it is used for.
//!
//! SASL itself accepts every well-formed exchange: the decision needs the registry (an async
//! store read) and fe2o3-amqp's SASL hook is synchronous, so the refusal, with its reason, comes
//! at the first link the token does not authorise (`amqp:unauthorized-access`), as on a hub
//! where CBS tokens are the norm.

use std::sync::{Arc, Mutex};

use fe2o3_amqp::acceptor::sasl_acceptor::{SaslAcceptor, SaslServerFrame};
use fe2o3_amqp::types::primitives::{Array, Symbol};
use fe2o3_amqp::types::sasl::{SaslCode, SaslInit, SaslOutcome, SaslResponse};

/// The mechanisms offered, strongest first.
pub const MECHANISMS: [&str; 3] = ["MSSBCBS", "PLAIN", "ANONYMOUS"];

/// What SASL PLAIN presented: the user name and the SAS token given as the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainCredentials {
    /// `{policy}@sas.root.{hub}` (or whatever the client sent).
    pub user: String,
    /// The SAS token. Never logged.
    pub token: String,
}

impl std::fmt::Debug for PlainCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainCredentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The SASL acceptor of one connection; [`HubSasl::plain_credentials`] reads what PLAIN left.
///
/// fe2o3-amqp clones the acceptor for the exchange, so the credentials live behind a shared
/// slot: build one acceptor per connection.
///
/// ```
/// use iothub_emulator::amqp::sasl::HubSasl;
/// let sasl = HubSasl::default();
/// assert!(sasl.plain_credentials().is_none());
/// ```
#[derive(Clone, Debug, Default)]
pub struct HubSasl {
    plain: Arc<Mutex<Option<PlainCredentials>>>,
}

impl HubSasl {
    /// The credentials of a PLAIN exchange, once it happened.
    #[must_use]
    pub fn plain_credentials(&self) -> Option<PlainCredentials> {
        self.plain.lock().ok()?.clone()
    }

    fn outcome(code: SaslCode) -> SaslServerFrame {
        SaslServerFrame::Outcome(SaslOutcome {
            code,
            additional_data: None,
        })
    }
}

/// Splits a PLAIN initial response `[authzid] NUL authcid NUL passwd` (RFC 4616).
fn parse_plain(response: &[u8]) -> Option<PlainCredentials> {
    let mut parts = response.split(|b| *b == 0);
    let _authzid = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?;
    let token = std::str::from_utf8(parts.next()?).ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some(PlainCredentials {
        user: user.to_owned(),
        token: token.to_owned(),
    })
}

impl SaslAcceptor for HubSasl {
    fn mechanisms(&self) -> Array<Symbol> {
        Array::from(
            MECHANISMS
                .iter()
                .map(|m| Symbol::from(*m))
                .collect::<Vec<_>>(),
        )
    }

    fn on_init(&mut self, init: SaslInit) -> SaslServerFrame {
        match init.mechanism.as_str() {
            "MSSBCBS" | "ANONYMOUS" => Self::outcome(SaslCode::Ok),
            "PLAIN" => {
                let credentials = init
                    .initial_response
                    .as_ref()
                    .and_then(|r| parse_plain(r.as_slice()));
                match credentials {
                    Some(c) => {
                        if let Ok(mut slot) = self.plain.lock() {
                            *slot = Some(c);
                        }
                        Self::outcome(SaslCode::Ok)
                    }
                    None => {
                        tracing::info!(
                            transport = "amqp",
                            "SASL PLAIN refused: the initial response is not authzid NUL user NUL token"
                        );
                        Self::outcome(SaslCode::Auth)
                    }
                }
            }
            other => {
                tracing::info!(
                    transport = "amqp",
                    mechanism = other,
                    "SASL refused: mechanism not offered"
                );
                Self::outcome(SaslCode::Auth)
            }
        }
    }

    fn on_response(&mut self, _response: SaslResponse) -> SaslServerFrame {
        // None of the offered mechanisms sends a challenge, so no response is expected.
        Self::outcome(SaslCode::Sys)
    }
}

#[cfg(test)]
mod tests {
    use fe2o3_amqp::types::primitives::Binary;

    use super::*;

    fn init(mechanism: &str, response: Option<&[u8]>) -> SaslInit {
        SaslInit {
            mechanism: Symbol::from(mechanism),
            initial_response: response.map(|r| Binary::from(r.to_vec())),
            hostname: None,
        }
    }

    fn code(frame: SaslServerFrame) -> SaslCode {
        match frame {
            SaslServerFrame::Outcome(o) => o.code,
            SaslServerFrame::Challenge(_) => panic!("no mechanism challenges"),
        }
    }

    #[test]
    fn offers_the_three_mechanisms_clients_ask_for() {
        let offered: Vec<String> = HubSasl::default()
            .mechanisms()
            .0
            .into_iter()
            .map(|s| s.0)
            .collect();
        assert_eq!(offered, ["MSSBCBS", "PLAIN", "ANONYMOUS"]);
    }

    #[test]
    fn cbs_mechanisms_succeed_without_credentials() {
        for m in ["MSSBCBS", "ANONYMOUS"] {
            let mut sasl = HubSasl::default();
            assert_eq!(code(sasl.on_init(init(m, None))), SaslCode::Ok);
            assert!(sasl.plain_credentials().is_none());
        }
    }

    #[test]
    fn plain_keeps_user_and_token_for_the_connection() {
        let sasl = HubSasl::default();
        let mut exchange = sasl.clone();
        let response = b"\0iothubowner@sas.root.hub\0SharedAccessSignature sr=x&sig=y&se=1";
        assert_eq!(
            code(exchange.on_init(init("PLAIN", Some(response)))),
            SaslCode::Ok
        );
        let c = sasl.plain_credentials().unwrap();
        assert_eq!(c.user, "iothubowner@sas.root.hub");
        assert_eq!(c.token, "SharedAccessSignature sr=x&sig=y&se=1");
        assert!(
            !format!("{c:?}").contains("sig="),
            "Debug must not print the token"
        );
    }

    #[test]
    fn malformed_plain_and_unknown_mechanisms_are_refused() {
        let mut sasl = HubSasl::default();
        assert_eq!(code(sasl.on_init(init("PLAIN", None))), SaslCode::Auth);
        assert_eq!(
            code(sasl.on_init(init("PLAIN", Some(b"no-nuls")))),
            SaslCode::Auth
        );
        assert_eq!(
            code(sasl.on_init(init("PLAIN", Some(b"\0a\0b\0c")))),
            SaslCode::Auth
        );
        assert_eq!(
            code(sasl.on_init(init("SCRAM-SHA-256", None))),
            SaslCode::Auth
        );
        assert!(sasl.plain_credentials().is_none());
    }
}
