//! Random ids: message ids for C2D messages (a UUID, as the service SDKs send) and link-name
//! suffixes.

use anyhow::anyhow;
use ring::rand::{SecureRandom, SystemRandom};

/// A random (version 4) UUID in its hyphenated lower-case form.
pub(crate) fn uuid_v4() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow!("the system random number generator failed"))?;
    Ok(format_uuid_v4(bytes))
}

/// Formats 16 random bytes as a version 4, variant 1 UUID.
fn format_uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_carry_version_and_variant() {
        assert_eq!(
            format_uuid_v4([0xff; 16]),
            "ffffffff-ffff-4fff-bfff-ffffffffffff"
        );
        assert_eq!(
            format_uuid_v4([0; 16]),
            "00000000-0000-4000-8000-000000000000"
        );
        let a = uuid_v4().unwrap();
        assert_eq!(a.len(), 36);
        assert_ne!(a, uuid_v4().unwrap());
    }
}
