//! Which resource a SAS token must cover, the same way on every transport (docs/rest-api.md
//! "Authentication"): a token's `sr` is a URI-prefix scope (`{host}/devices/d1` covers
//! `{host}/devices/d1/modules/m1`, nothing else), and its host may be any name the hub answers
//! to (`localhost`, `127.0.0.1`, `--hostname`s), with or without a port.

/// Splits a URI scheme (`sb://`, `amqps://`, `https://`) off a token's decoded `sr`: AMQP
/// clients sign their audience as a URI (docs/amqp.md "Authentication"), REST and MQTT clients
/// sign the bare host. Returns the scheme with its `://` (empty when there is none) and the rest.
///
/// ```
/// use iothub_emulator::hub::audience::split_scheme;
/// assert_eq!(split_scheme("sb://127.0.0.1/hub"), ("sb://", "127.0.0.1/hub"));
/// assert_eq!(split_scheme("localhost/devices/d1"), ("", "localhost/devices/d1"));
/// ```
#[must_use]
pub fn split_scheme(resource: &str) -> (&str, &str) {
    match resource.find("://") {
        Some(i)
            if i > 0
                && resource[..i]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.') =>
        {
            resource.split_at(i + 3)
        }
        _ => ("", resource),
    }
}

/// The host segment of a token's decoded `sr` (port included) when it names this hub; `None`
/// for a token meant for another hub.
///
/// ```
/// use iothub_emulator::hub::audience::hub_alias;
/// let names = ["localhost".to_string(), "127.0.0.1".to_string()];
/// assert_eq!(hub_alias(&names, "127.0.0.1:8443/devices/d1"), Some("127.0.0.1:8443"));
/// assert_eq!(hub_alias(&names, "LOCALHOST"), Some("LOCALHOST"));
/// assert_eq!(hub_alias(&names, "other.example/devices/d1"), None);
/// ```
#[must_use]
pub fn hub_alias<'a>(names: &[String], resource: &'a str) -> Option<&'a str> {
    let segment = resource.split('/').next().unwrap_or_default();
    let host = match segment.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => segment,
    };
    names
        .iter()
        .any(|n| n.eq_ignore_ascii_case(host))
        .then_some(segment)
}

/// The resource a REST request touches: the token's own host segment followed by the
/// request's percent-decoded path without its trailing `/` (`/twins/d1` under host `h` is
/// `h/twins/d1`). A path that is not valid percent-encoded UTF-8 is used as sent (its route
/// refuses it anyway).
///
/// ```
/// use iothub_emulator::hub::audience::request_resource;
/// assert_eq!(request_resource("localhost", "/devices/d%31/"), "localhost/devices/d1");
/// assert_eq!(request_resource("localhost", "/devices/%ff"), "localhost/devices/%ff");
/// ```
#[must_use]
pub fn request_resource(token_host: &str, path: &str) -> String {
    let decoded = iothub_proto::percent::Decoded::new(path)
        .decode()
        .unwrap_or_else(|_| path.to_owned());
    format!("{token_host}{}", decoded.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use iothub_proto::sas::ParsedSasToken;

    use super::*;

    fn covers(sr: &str, path: &str) -> bool {
        let raw = format!("SharedAccessSignature sr={sr}&sig=x&se=1");
        let token = ParsedSasToken::parse(&raw).unwrap();
        let resource = token.resource().decode().unwrap();
        let names = ["localhost".to_string()];
        let host = hub_alias(&names, &resource).unwrap();
        token.covers(&request_resource(host, path))
    }

    #[test]
    fn a_path_scoped_token_covers_only_its_subtree() {
        assert!(covers("localhost", "/twins/devA"));
        assert!(covers("localhost%2Fdevices%2FdevB", "/devices/devB"));
        assert!(covers(
            "localhost%2Fdevices%2FdevB",
            "/devices/devB/modules/m"
        ));
        assert!(!covers("localhost%2Fdevices%2FdevB", "/devices/devBB"));
        assert!(!covers("localhost%2Fdevices%2FdevB", "/twins/devA"));
        assert!(!covers("localhost%2Fdevices%2FdevB", "/devices/devA"));
        assert!(!covers("localhost%2Fdevices%2FdevB", "/devices"));
    }
}
