//! Random identifiers and keys for the hub domain (C2D message ids, DPS operation ids, id
//! scopes, enrollment keys), drawn from the operating system through `ring`, the workspace's
//! one crypto provider.

use base64::Engine as _;
use ring::rand::{SecureRandom as _, SystemRandom};

/// `N` random bytes from the operating system.
///
/// # Panics
/// Only if the operating system's random source is unavailable, which `ring` already
/// requires at start-up (TLS keys need it too); the emulator cannot run without it.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // invariant: `SystemRandom` is getrandom(2)/`/dev/urandom`; it fails only on platforms
    // ring does not support, where the TLS listener could not start either.
    #[allow(clippy::expect_used)]
    SystemRandom::new()
        .fill(&mut out)
        .expect("operating system random source");
    out
}

/// A random (version 4) UUID in its usual lower-case hyphenated form.
///
/// # Example
/// ```
/// let id = iothub_emulator::hub::ids::uuid_v4();
/// assert_eq!(id.len(), 36);
/// assert_eq!(&id[14..15], "4");
/// ```
pub fn uuid_v4() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A random symmetric key of 64 bytes, base64-encoded, as DPS and IoT Hub generate them
/// (docs/protocol.md §9: "auto-generated keys are 64 bytes").
///
/// # Example
/// ```
/// let key = iothub_emulator::hub::ids::symmetric_key();
/// assert_eq!(key.len(), 88);
/// ```
pub fn symmetric_key() -> String {
    base64::engine::general_purpose::STANDARD.encode(random_bytes::<64>())
}

/// Whether `id` is a valid device or module id under IoT Hub's rules: 1 to 128 ASCII
/// characters from alphanumerics and `- : . + % _ # * ? ! ( ) , = @ ; $ '`, and not `.` or
/// `..` (such an id cannot be addressed in a URL path: HTTP clients normalise it away).
///
/// # Example
/// ```
/// use iothub_emulator::hub::ids::is_valid_identity_id;
/// assert!(is_valid_identity_id("thermostat-1"));
/// assert!(!is_valid_identity_id(".."));
/// assert!(!is_valid_identity_id("a/b"));
/// assert!(!is_valid_identity_id(&"x".repeat(129)));
/// ```
#[must_use]
pub fn is_valid_identity_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-:.+%_#*?!(),=@;$'".contains(&b))
}

/// Lower-case hexadecimal of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_distinct_and_well_formed() {
        let a = uuid_v4();
        let b = uuid_v4();
        assert_ne!(a, b);
        let dashes: Vec<usize> = a.match_indices('-').map(|(i, _)| i).collect();
        assert_eq!(dashes, [8, 13, 18, 23]);
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn identity_ids_follow_iot_hub_rules() {
        for ok in ["d", "a.b", "...", "x:y-z_1", &"a".repeat(128)] {
            assert!(is_valid_identity_id(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", "a\0", &"a".repeat(129)] {
            assert!(!is_valid_identity_id(bad), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn valid_ids_are_path_safe(id in "[a-zA-Z0-9.:%_-]{0,130}") {
            if is_valid_identity_id(&id) {
                proptest::prop_assert!(id != "." && id != ".." && !id.contains('/') && id.len() <= 128);
            }
        }
    }

    #[test]
    fn symmetric_keys_decode_to_64_bytes() {
        let key = symmetric_key();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(key)
            .unwrap();
        assert_eq!(raw.len(), 64);
    }
}
