//! Connection strings of every shape in docs/protocol.md §3, and one error per problem.

use iothub_proto::connection_string::{ConnectionString, ConnectionStringError, Credential, Field};

const KEY: &str = "+XLy+MVZ+aTeOnVzN2kLeB16O+kSxmz6g3rS6fAf6rw=";
const HOST: &str = "iot-hub-for-test.azure-devices.net";

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    let mut buf = [0u8; 256];
    let len = base64::engine::general_purpose::STANDARD
        .encode_slice(bytes, &mut buf)
        .expect("key fits");
    String::from_utf8(buf[..len].to_vec()).expect("base64 is ascii")
}

fn parse(text: &str) -> Result<ConnectionString<'_>, ConnectionStringError> {
    ConnectionString::parse(text)
}

#[test]
fn parses_device_key_string() {
    let text = format!("HostName={HOST};DeviceId=dev1;SharedAccessKey={KEY}");
    let cs = parse(&text).unwrap();
    assert_eq!(cs.host_name(), HOST);
    assert_eq!(cs.device_id(), Some("dev1"));
    assert_eq!(cs.module_id(), None);
    assert_eq!(cs.credential(), Credential::DeviceKey { key: KEY });
    assert_eq!(cs.shared_access_key(), Some(KEY));
    assert_eq!(cs.policy_name(), None);
    assert_eq!(cs.dial_host(), HOST);
}

#[test]
fn parses_module_key_string() {
    let text = format!("HostName={HOST};DeviceId=dev1;ModuleId=mod1;SharedAccessKey={KEY}");
    let cs = parse(&text).unwrap();
    assert_eq!(cs.module_id(), Some("mod1"));
    assert_eq!(cs.credential(), Credential::ModuleKey { key: KEY });
}

#[test]
fn parses_device_via_policy_key_string() {
    let text =
        format!("HostName={HOST};DeviceId=dev1;SharedAccessKeyName=device;SharedAccessKey={KEY}");
    let cs = parse(&text).unwrap();
    assert_eq!(
        cs.credential(),
        Credential::DevicePolicyKey {
            policy: "device",
            key: KEY
        }
    );
    assert_eq!(cs.policy_name(), Some("device"));
}

#[test]
fn parses_service_policy_string() {
    let text = format!("HostName={HOST};SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}");
    let cs = parse(&text).unwrap();
    assert_eq!(cs.device_id(), None);
    assert_eq!(
        cs.credential(),
        Credential::ServicePolicyKey {
            policy: "iothubowner",
            key: KEY
        }
    );
}

#[test]
fn parses_pre_made_token_with_equals_and_ampersands() {
    let token = "SharedAccessSignature sr=h%2Fdevices%2FMyDevice01%2Fapi-version%3D2016-11-14&sig=abc%3D&se=1456971697";
    let text = format!("HostName=h;DeviceId=MyDevice01;SharedAccessSignature={token}");
    let cs = parse(&text).unwrap();
    assert_eq!(cs.credential(), Credential::Token { token });
    assert_eq!(cs.shared_access_key(), None);
}

#[test]
fn parses_x509_string_with_gateway() {
    let cs = parse("HostName=h.azure-devices.net;DeviceId=d;x509=true;GatewayHostName=edge.local")
        .unwrap();
    assert_eq!(cs.credential(), Credential::X509);
    assert_eq!(cs.gateway_host_name(), Some("edge.local"));
    assert_eq!(cs.dial_host(), "edge.local");
    assert_eq!(cs.host_name(), "h.azure-devices.net");
}

#[test]
fn tolerates_whitespace_trailing_semicolon_and_key_case() {
    let text = format!("  HostName = {HOST} ; deviceid=dev1 ;\n SharedAccessKey={KEY};  ");
    let cs = parse(&text).unwrap();
    assert_eq!(cs.host_name(), HOST);
    assert_eq!(cs.device_id(), Some("dev1"));
    assert_eq!(cs.credential(), Credential::DeviceKey { key: KEY });
    assert_eq!(
        parse("HostName=h;DeviceId=d;X509=TRUE")
            .unwrap()
            .credential(),
        Credential::X509
    );
}

#[test]
fn rejects_missing_host_name() {
    assert_eq!(
        parse(&format!("DeviceId=d;SharedAccessKey={KEY}")),
        Err(ConnectionStringError::MissingField(Field::HostName))
    );
}

#[test]
fn rejects_missing_credential() {
    assert_eq!(
        parse("HostName=h;DeviceId=d"),
        Err(ConnectionStringError::MissingCredential)
    );
    assert_eq!(
        parse("HostName=h;SharedAccessKeyName=iothubowner"),
        Err(ConnectionStringError::MissingField(Field::SharedAccessKey))
    );
    assert_eq!(
        parse("HostName=h;DeviceId=d;x509=false"),
        Err(ConnectionStringError::MissingCredential)
    );
}

#[test]
fn rejects_key_without_identity_or_policy() {
    assert_eq!(
        parse(&format!("HostName=h;SharedAccessKey={KEY}")),
        Err(ConnectionStringError::MissingField(Field::DeviceId))
    );
    assert_eq!(
        parse(&format!("HostName=h;ModuleId=m;SharedAccessKey={KEY}")),
        Err(ConnectionStringError::MissingField(Field::DeviceId))
    );
    assert_eq!(
        parse("HostName=h;x509=true"),
        Err(ConnectionStringError::MissingField(Field::DeviceId))
    );
}

#[test]
fn rejects_duplicate_key() {
    assert_eq!(
        parse(&format!(
            "HostName=h;DeviceId=a;deviceId=b;SharedAccessKey={KEY}"
        )),
        Err(ConnectionStringError::DuplicateKey(Field::DeviceId))
    );
}

#[test]
fn rejects_empty_value() {
    assert_eq!(
        parse(&format!("HostName=h;DeviceId= ;SharedAccessKey={KEY}")),
        Err(ConnectionStringError::EmptyValue(Field::DeviceId))
    );
}

#[test]
fn rejects_unknown_key_with_its_offset() {
    let text = format!("HostName=h;DeviceId=d; Colour=blue;SharedAccessKey={KEY}");
    let err = parse(&text).unwrap_err();
    assert_eq!(err, ConnectionStringError::UnknownKey { offset: 23 });
    assert!(text[23..].starts_with("Colour"));
}

#[test]
fn rejects_segment_without_equals() {
    assert_eq!(
        parse(&format!(
            "HostName=h;DeviceId=d;garbage;SharedAccessKey={KEY}"
        )),
        Err(ConnectionStringError::MalformedSegment { offset: 22 })
    );
}

#[test]
fn rejects_invalid_base64_key() {
    for key in ["not base64!", "abc", "QUJD=", "%%%%"] {
        assert_eq!(
            parse(&format!("HostName=h;DeviceId=d;SharedAccessKey={key}")),
            Err(ConnectionStringError::InvalidKey),
            "{key}"
        );
    }
    let too_long = "A".repeat(400);
    assert_eq!(
        parse(&format!("HostName=h;DeviceId=d;SharedAccessKey={too_long}")),
        Err(ConnectionStringError::InvalidKey)
    );
}

#[test]
fn rejects_invalid_pre_made_token() {
    assert_eq!(
        parse("HostName=h;DeviceId=d;SharedAccessSignature=sr=a&sig=b&se=1"),
        Err(ConnectionStringError::InvalidToken)
    );
}

#[test]
fn rejects_conflicting_credentials() {
    assert_eq!(
        parse(&format!(
            "HostName=h;DeviceId=d;SharedAccessKey={KEY};x509=true"
        )),
        Err(ConnectionStringError::ConflictingCredentials)
    );
}

#[test]
fn rejects_invalid_x509_value() {
    assert_eq!(
        parse("HostName=h;DeviceId=d;x509=yes"),
        Err(ConnectionStringError::InvalidValue(Field::X509))
    );
}

#[test]
fn error_messages_name_the_field() {
    assert_eq!(
        ConnectionStringError::MissingField(Field::HostName).to_string(),
        "connection string has no HostName"
    );
    assert_eq!(
        ConnectionStringError::DuplicateKey(Field::SharedAccessKey).to_string(),
        "connection string repeats SharedAccessKey"
    );
}

proptest::proptest! {
    #[test]
    fn parse_never_panics(text in "\\PC*") {
        let _ = ConnectionString::parse(&text);
    }

    #[test]
    fn device_strings_round_trip(
        host in "[a-z0-9-]{1,20}\\.azure-devices\\.net",
        device in "[A-Za-z0-9:.+%_#*?!(),=@$'-]{1,40}",
        key in proptest::collection::vec(proptest::num::u8::ANY, 1..=64),
    ) {
        let key = base64(&key);
        let text = format!("HostName={host};DeviceId={device};SharedAccessKey={key}");
        let cs = ConnectionString::parse(&text).unwrap();
        proptest::prop_assert_eq!(cs.host_name(), host.as_str());
        proptest::prop_assert_eq!(cs.device_id(), Some(device.as_str()));
        proptest::prop_assert_eq!(cs.credential(), Credential::DeviceKey { key: &key });
    }
}
