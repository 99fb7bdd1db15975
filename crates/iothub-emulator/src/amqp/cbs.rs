//! The `$cbs` node: claims-based security, how Azure clients authenticate a connection after
//! SASL ANONYMOUS or MSSBCBS, and how they renew tokens (docs/amqp.md "CBS").
//!
//! A request is a message on the sender link whose target is `$cbs`: body an amqp-value
//! string (the token), application properties `operation` = `put-token`, `type`, `name` (the
//! audience) and an optional `expiration`. The reply goes on the paired receiver link:
//! `status-code` (int; 202 on success), `status-description`, and `correlation-id` = the
//! request's `message-id` with the same AMQP type (uamqp numbers requests as ulongs from 0,
//! the Python stack uses UUIDs).
//!
//! Nothing here ever formats a token: errors name the property at fault, never its value,
//! so a refusal can be logged as it is.

use fe2o3_amqp::types::messaging::{AmqpValue, Message, MessageId};
use fe2o3_amqp::types::primitives::Value;

use super::values::{status_reply, text_property};

/// Token type of a shared access signature.
pub const SAS_TOKEN_TYPE: &str = "servicebus.windows.net:sastoken";

/// Token type of a JSON web token (pyamqp also sends it for SAS tokens).
pub const JWT_TOKEN_TYPE: &str = "jwt";

/// A `put-token` request.
#[derive(Clone, PartialEq, Eq)]
pub struct CbsRequest {
    /// The token (a secret: never log it).
    pub token: String,
    /// `name`: the resource the token is for, e.g. `sb://{host}/{eventhub}` or
    /// `https://{host}`; the token's own `sr` decides what it covers.
    pub audience: String,
    /// The type by the token's content: [`SAS_TOKEN_TYPE`] when it starts with
    /// `SharedAccessSignature `, else [`JWT_TOKEN_TYPE`] (whatever the client declared, since
    /// pyamqp declares `jwt` for SAS tokens).
    pub token_type: String,
    /// The request's `message-id`, to correlate the reply.
    pub message_id: Option<MessageId>,
}

impl std::fmt::Debug for CbsRequest {
    /// Everything but the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CbsRequest")
            .field("token", &"<redacted>")
            .field("audience", &self.audience)
            .field("token_type", &self.token_type)
            .field("message_id", &self.message_id)
            .finish()
    }
}

impl CbsRequest {
    /// Whether the token is a shared access signature.
    #[must_use]
    pub fn is_sas(&self) -> bool {
        self.token_type == SAS_TOKEN_TYPE
    }
}

/// Why a `$cbs` request was refused (answered with status 400; never carries the token).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CbsError {
    /// A required application property is absent.
    #[error("put-token request without the {0} application property")]
    MissingProperty(&'static str),
    /// An application property is not a string.
    #[error("the {0} application property of a put-token request must be a string")]
    NotAString(&'static str),
    /// `operation` is not `put-token`.
    #[error("unsupported $cbs operation {0:?} (only put-token)")]
    UnsupportedOperation(String),
    /// `type` is neither a SAS token nor a JWT.
    #[error("unsupported token type {0:?}")]
    UnsupportedTokenType(String),
    /// The body is not an amqp-value string (or UTF-8 binary).
    #[error("the body of a put-token request must be an amqp-value string")]
    BodyNotAString,
    /// The token is empty.
    #[error("put-token request with an empty token")]
    EmptyToken,
}

impl CbsError {
    /// The status code to answer with: 400 for every malformed request.
    #[must_use]
    pub fn status(&self) -> i32 {
        400
    }
}

/// Parses a `$cbs` request.
///
/// # Errors
/// [`CbsError`] naming the missing or malformed part.
///
/// # Example
/// ```
/// use fe2o3_amqp::types::messaging::{ApplicationProperties, Message, MessageId, Properties};
/// use fe2o3_amqp::types::primitives::Value;
/// use iothub_emulator::amqp::cbs::{parse_cbs_request, SAS_TOKEN_TYPE};
/// let request = Message::builder()
///     .properties(Properties::builder().message_id(MessageId::Ulong(0)).build())
///     .application_properties(
///         ApplicationProperties::builder()
///             .insert("operation", "put-token")
///             .insert("type", "jwt")
///             .insert("name", "sb://localhost/iothub-ehub-h")
///             .build(),
///     )
///     .body(Value::String("SharedAccessSignature sr=localhost&sig=x&se=1&skn=service".into()))
///     .build();
/// let parsed = parse_cbs_request(&request).unwrap();
/// assert_eq!(parsed.token_type, SAS_TOKEN_TYPE);
/// assert_eq!(parsed.audience, "sb://localhost/iothub-ehub-h");
/// assert_eq!(parsed.message_id, Some(MessageId::Ulong(0)));
/// ```
pub fn parse_cbs_request(msg: &Message<Value>) -> Result<CbsRequest, CbsError> {
    let application = msg.application_properties.as_ref();
    let text = |key: &'static str| -> Result<&str, CbsError> {
        text_property(application, key)
            .map_err(|()| CbsError::NotAString(key))?
            .ok_or(CbsError::MissingProperty(key))
    };
    let operation = text("operation")?;
    if operation != "put-token" {
        return Err(CbsError::UnsupportedOperation(operation.to_owned()));
    }
    let declared = text("type")?;
    if declared != SAS_TOKEN_TYPE && declared != JWT_TOKEN_TYPE {
        return Err(CbsError::UnsupportedTokenType(declared.to_owned()));
    }
    let audience = text("name")?;
    // A string; pyamqp may send a token held as Python `bytes` as binary.
    let token = match &msg.body {
        Value::String(token) => token.as_str(),
        Value::Binary(bytes) => std::str::from_utf8(bytes).map_err(|_| CbsError::BodyNotAString)?,
        _ => return Err(CbsError::BodyNotAString),
    };
    if token.trim().is_empty() {
        return Err(CbsError::EmptyToken);
    }
    let token_type = if token.trim_start().starts_with("SharedAccessSignature ") {
        SAS_TOKEN_TYPE
    } else {
        JWT_TOKEN_TYPE
    };
    Ok(CbsRequest {
        token: token.to_owned(),
        audience: audience.to_owned(),
        token_type: token_type.to_owned(),
        message_id: msg.properties.as_ref().and_then(|p| p.message_id.clone()),
    })
}

/// The reply to a `$cbs` request: `status-code` (AMQP int) and `status-description` in the
/// application properties, `correlation-id` = `correlation` (the request's `message-id`,
/// same AMQP type), an amqp-value null body.
///
/// Returned with its body as an [`AmqpValue`] section, so it goes straight to a fe2o3
/// `Sender::send`.
///
/// # Example
/// ```
/// use fe2o3_amqp::types::messaging::MessageId;
/// use fe2o3_amqp::types::primitives::SimpleValue;
/// use iothub_emulator::amqp::cbs::cbs_reply;
/// let reply = cbs_reply(Some(MessageId::Ulong(7)), 202, "Accepted");
/// let props = reply.properties.unwrap();
/// assert_eq!(props.correlation_id, Some(MessageId::Ulong(7)));
/// let app = reply.application_properties.unwrap();
/// assert_eq!(app.get("status-code"), Some(&SimpleValue::Int(202)));
/// ```
#[must_use]
pub fn cbs_reply(
    correlation: Option<MessageId>,
    status: i32,
    description: &str,
) -> Message<AmqpValue<Value>> {
    status_reply(correlation, status, description, Value::Null)
}

#[cfg(test)]
mod tests;
