//! Claims-based security (docs/amqp.md "Authentication"): after SASL ANONYMOUS the client puts
//! a SAS token on the `$cbs` node for each audience it uses.

use fe2o3_amqp::types::messaging::{AmqpValue, ApplicationProperties, Message};
use fe2o3_amqp::types::primitives::Value;

/// The `type` of a SAS token put on `$cbs`.
pub(crate) const SAS_TOKEN_TYPE: &str = "servicebus.windows.net:sastoken";

/// The put-token request for `audience`: body the token, application properties `operation`,
/// `type` and `name` (the audience).
pub(crate) fn put_token(audience: &str, token: &str) -> Message<AmqpValue<Value>> {
    let properties = ApplicationProperties::builder()
        .insert("operation", "put-token")
        .insert("type", SAS_TOKEN_TYPE)
        .insert("name", audience.to_owned())
        .build();
    Message::builder()
        .application_properties(properties)
        .value(Value::String(token.to_owned()))
        .build()
}

#[cfg(test)]
mod tests {
    use fe2o3_amqp::types::primitives::SimpleValue;

    use super::*;

    #[test]
    fn put_token_names_operation_type_and_audience() {
        let m = put_token("sb://h/hub", "SharedAccessSignature sr=x");
        let p = m.application_properties.unwrap().0;
        assert_eq!(
            p.get("operation"),
            Some(&SimpleValue::String("put-token".into()))
        );
        assert_eq!(
            p.get("type"),
            Some(&SimpleValue::String(SAS_TOKEN_TYPE.into()))
        );
        assert_eq!(
            p.get("name"),
            Some(&SimpleValue::String("sb://h/hub".into()))
        );
        assert_eq!(m.body.0, Value::String("SharedAccessSignature sr=x".into()));
    }
}
