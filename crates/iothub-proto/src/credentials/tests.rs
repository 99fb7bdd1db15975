extern crate std;
use std::string::{String, ToString};

use proptest::prelude::*;

use super::*;

#[test]
fn parses_python_sdk_username_from_the_wire() {
    // azure-iot-device 2.14.0 with a model id (docs/protocol.md §1.4)
    let text = "localhost/dev3/?api-version=2020-09-30&DeviceClientType=azure-iot-device-iothub-py%2F2.14.0%283.11.7%3BLinux%20%231%20SMP%20PREEMPT_DYNAMIC%20%400%3Bx86_64%29&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1";
    let username = ParsedUsername::parse(text).unwrap();
    assert_eq!(
        (username.host(), username.device_id(), username.module_id()),
        ("localhost", "dev3", None)
    );
    assert_eq!(username.api_version().unwrap().to_string(), "2020-09-30");
    assert_eq!(
        username.device_client_type().unwrap().to_string(),
        "azure-iot-device-iothub-py/2.14.0(3.11.7;Linux #1 SMP PREEMPT_DYNAMIC @0;x86_64)"
    );
    assert_eq!(
        username.model_id().unwrap().to_string(),
        "dtmi:com:example:Thermostat;1"
    );
}

#[test]
fn parses_c_sdk_username_with_lower_case_escapes() {
    // docs/protocol.md §1.4, azure-iot-sdk-c trace
    let text = "h.azure-devices.net/sample-device-01/?api-version=2020-09-30&DeviceClientType=iothubclient%2f1.6.0%20(native%3b%20Linux%3b%20x86_64)&model-id=dtmi%3acom%3aexample%3aTemperatureController%3b1";
    let username = ParsedUsername::parse(text).unwrap();
    assert_eq!(username.device_id(), "sample-device-01");
    assert_eq!(
        username.device_client_type().unwrap().to_string(),
        "iothubclient/1.6.0 (native; Linux; x86_64)"
    );
    assert!(
        username
            .model_id()
            .unwrap()
            .eq_str("dtmi:com:example:TemperatureController;1")
    );
}

#[test]
fn accepts_unencoded_model_id_from_the_docs() {
    let username = ParsedUsername::parse(
        "h/d/?api-version=2020-09-30&model-id=dtmi:com:example:ConvertSample;1",
    )
    .unwrap();
    assert_eq!(
        username.model_id().unwrap().raw(),
        "dtmi:com:example:ConvertSample;1"
    );
}

#[test]
fn parses_module_username() {
    let username =
        ParsedUsername::parse("h/dev/DeviceUpdate/?api-version=2020-09-30&DeviceClientType=x")
            .unwrap();
    assert_eq!(username.module_id(), Some("DeviceUpdate"));
}

#[test]
fn does_not_decode_ids_and_keeps_plus() {
    let username = ParsedUsername::parse("h/a%20b+c/?api-version=1&x=a+b").unwrap();
    assert_eq!(username.device_id(), "a%20b+c");
    assert!(username.param("x").unwrap().eq_str("a+b"));
}

#[test]
fn ignores_unknown_parameters_and_accepts_missing_api_version() {
    let username = ParsedUsername::parse("h/d/?foo=bar&model-id=m").unwrap();
    assert_eq!(username.api_version(), None);
    assert!(username.model_id().unwrap().eq_str("m"));
    assert_eq!(ParsedUsername::parse("h/d/").unwrap().device_id(), "d");
    assert_eq!(ParsedUsername::parse("h/d/?").unwrap().api_version(), None);
}

#[test]
fn rejects_malformed_hub_usernames() {
    assert_eq!(ParsedUsername::parse(""), Err(UsernameError::MissingHost));
    assert_eq!(
        ParsedUsername::parse("/d/?api-version=1"),
        Err(UsernameError::MissingHost)
    );
    assert_eq!(
        ParsedUsername::parse("host"),
        Err(UsernameError::MissingDeviceId)
    );
    assert_eq!(
        ParsedUsername::parse("host/?api-version=1"),
        Err(UsernameError::MissingDeviceId)
    );
    assert_eq!(
        ParsedUsername::parse("h/d//?api-version=1"),
        Err(UsernameError::EmptyModuleId)
    );
    assert_eq!(
        ParsedUsername::parse("h/d/m/x/?api-version=1"),
        Err(UsernameError::TooManySegments)
    );
}

#[test]
fn parses_dps_usernames() {
    let username =
        ParsedDpsUsername::parse("0ne1/registrations/r-1/api-version=2019-03-31").unwrap();
    assert_eq!(
        (username.id_scope(), username.registration_id()),
        ("0ne1", "r-1")
    );
    assert!(username.api_version().unwrap().eq_str("2019-03-31"));
    assert_eq!(username.client_version(), None);
    let tolerant =
        ParsedDpsUsername::parse("0ne1/registrations/r-1/?api-version=2019-03-31").unwrap();
    assert!(tolerant.api_version().unwrap().eq_str("2019-03-31"));
    assert_eq!(
        ParsedDpsUsername::parse("0ne1/registrations/r-1")
            .unwrap()
            .query(),
        ""
    );
}

#[test]
fn rejects_malformed_dps_usernames() {
    assert_eq!(
        ParsedDpsUsername::parse("h/d/?api-version=1"),
        Err(UsernameError::NotDps)
    );
    assert_eq!(
        ParsedDpsUsername::parse("/registrations/r/api-version=1"),
        Err(UsernameError::NotDps)
    );
    assert_eq!(
        ParsedDpsUsername::parse("a/b/registrations/r"),
        Err(UsernameError::NotDps)
    );
    assert_eq!(
        ParsedDpsUsername::parse("s/registrations//api-version=1"),
        Err(UsernameError::MissingRegistrationId)
    );
}

#[test]
fn incoming_username_tells_hub_from_dps() {
    assert!(matches!(
        IncomingUsername::parse("h/d"),
        Ok(IncomingUsername::Hub(_))
    ));
    assert!(matches!(
        IncomingUsername::parse("h/registrations/m/?api-version=1"),
        Ok(IncomingUsername::Hub(_))
    ));
    assert!(matches!(
        IncomingUsername::parse("s/registrations/r"),
        Ok(IncomingUsername::Dps(_))
    ));
    assert_eq!(
        IncomingUsername::parse("nothing"),
        Err(UsernameError::MissingDeviceId)
    );
}

#[test]
fn python_style_username_builds_byte_for_byte() {
    let ua = "azure-iot-device-iothub-py/2.14.0(3.11.7;Linux #1 SMP PREEMPT_DYNAMIC @0;x86_64)";
    let username = Username::device("localhost", "dev3")
        .with_api_version("2020-09-30")
        .with_user_agent(ua)
        .with_model_id("dtmi:com:example:Thermostat;1");
    assert_eq!(
        username.to_string(),
        "localhost/dev3/?api-version=2020-09-30&DeviceClientType=azure-iot-device-iothub-py%2F2.14.0%283.11.7%3BLinux%20%231%20SMP%20PREEMPT_DYNAMIC%20%400%3Bx86_64%29&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1"
    );
}

#[test]
fn keep_alive_limit_is_the_largest_value_under_the_cap() {
    assert!(server_idle_timeout_secs(MAX_KEEP_ALIVE_SECS) <= SERVER_IDLE_CAP_SECS);
    assert_eq!(
        u32::from(MAX_KEEP_ALIVE_SECS + 1) * 3 / 2,
        SERVER_IDLE_CAP_SECS
    );
}

#[test]
fn errors_display_in_lower_case() {
    let errors = [
        UsernameError::EmptyModuleId,
        UsernameError::MissingDeviceId,
        UsernameError::MissingHost,
        UsernameError::MissingRegistrationId,
        UsernameError::NotDps,
        UsernameError::TooManySegments,
    ];
    for error in errors {
        let text = error.to_string();
        assert!(
            text.starts_with(char::is_lowercase) && !text.ends_with('.'),
            "{text}"
        );
    }
}

fn id() -> impl Strategy<Value = String> {
    // IoT Hub id characters (docs/protocol.md §3) minus `/`, starting with an alphanumeric so an id
    // never begins with the `?` of the `/?` separator.
    "[A-Za-z0-9][A-Za-z0-9:.+%_#*?!(),=@;$'-]{0,40}"
}

proptest! {
    #[test]
    fn hub_username_round_trips(
        host in "[a-z0-9.-]{1,30}",
        device in id(),
        module in proptest::option::of(id()),
        api in "[0-9-]{1,10}",
        user_agent in proptest::option::of("\\PC{0,30}"),
        model in proptest::option::of("\\PC{0,30}"),
    ) {
        let mut username = match &module {
            Some(module) => Username::module(&host, &device, module),
            None => Username::device(&host, &device),
        }
        .with_api_version(&api);
        if let Some(user_agent) = &user_agent {
            username = username.with_user_agent(user_agent);
        }
        if let Some(model) = &model {
            username = username.with_model_id(model);
        }
        let text = username.to_string();
        let parsed = ParsedUsername::parse(&text).unwrap();
        prop_assert_eq!(parsed.host(), host.as_str());
        prop_assert_eq!(parsed.device_id(), device.as_str());
        prop_assert_eq!(parsed.module_id(), module.as_deref());
        prop_assert_eq!(parsed.api_version().map(|v| v.to_string()), Some(api));
        prop_assert_eq!(parsed.device_client_type().map(|v| v.to_string()), user_agent);
        prop_assert_eq!(parsed.model_id().map(|v| v.to_string()), model);
        prop_assert!(matches!(IncomingUsername::parse(&text), Ok(IncomingUsername::Hub(p)) if p == parsed));
    }

    #[test]
    fn dps_username_round_trips(
        scope in "0ne[0-9A-F]{8}",
        registration in "[a-z0-9][a-z0-9:._-]{0,60}",
        client in proptest::option::of("\\PC{0,30}"),
    ) {
        let mut username = DpsUsername::new(&scope, &registration);
        if let Some(client) = &client {
            username = username.with_client_version(client);
        }
        let text = username.to_string();
        let parsed = ParsedDpsUsername::parse(&text).unwrap();
        prop_assert_eq!(parsed.id_scope(), scope.as_str());
        prop_assert_eq!(parsed.registration_id(), registration.as_str());
        prop_assert_eq!(parsed.api_version().map(|v| v.to_string()), Some(DPS_API_VERSION.to_string()));
        prop_assert_eq!(parsed.client_version().map(|v| v.to_string()), client);
        prop_assert!(matches!(IncomingUsername::parse(&text), Ok(IncomingUsername::Dps(p)) if p == parsed));
    }

    #[test]
    fn parsers_never_panic(text in "\\PC*") {
        let _ = ParsedUsername::parse(&text);
        let _ = ParsedDpsUsername::parse(&text);
        let _ = IncomingUsername::parse(&text);
    }
}
