//! Azure Storage service SAS tokens for one blob (docs/file-upload.md "SAS tokens"): signed
//! by the hub with the storage account's key, as IoT Hub does, and checked by the built-in
//! blob endpoint.
//!
//! The token is a query string `sv=…&sr=b&sig=…&se=…&sp=…`; `sig` is the base64 HMAC-SHA256,
//! under the decoded account key, of the string-to-sign of the service SAS for versions
//! 2020-12-06 and later (sixteen lines):
//! `sp, st, se, /blob/{account}/{container}/{blob}, si, sip, spr, sv, sr, snapshot time, ses,
//! rscc, rscd, rsce, rscl, rsct`, empty lines for the fields not used.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use iothub_proto::percent::{self, Decoded};
use ring::hmac;

use super::storage::StorageAccount;
use crate::timestamp::{iso8601_millis, parse_iso8601};

/// The signed version (`sv`) of the tokens the hub issues; the built-in endpoint checks this
/// string-to-sign layout, which every version since has kept for service SAS.
pub const VERSION: &str = "2020-12-06";

/// The permissions of an upload token: read, create, write (as IoT Hub grants them).
pub const UPLOAD_PERMISSIONS: &str = "rcw";

/// The string-to-sign of a service SAS (version 2020-12-06 layout) without start time,
/// identifier, IP range, protocol, snapshot, encryption scope or response headers.
fn string_to_sign(
    permissions: &str,
    start: &str,
    expiry: &str,
    canonical_resource: &str,
    protocol: &str,
    version: &str,
    resource: &str,
) -> String {
    // sp, st, se, resource, si, sip, spr, sv, sr, snapshot, ses, rscc, rscd, rsce, rscl, rsct
    format!(
        "{permissions}\n{start}\n{expiry}\n{canonical_resource}\n\n\n{protocol}\n{version}\n{resource}\n\n\n\n\n\n\n"
    )
}

/// `/blob/{account}/{container}[/{blob}]`: the canonical resource, unencoded.
fn canonical_resource(account: &str, container: &str, blob: Option<&str>) -> String {
    match blob {
        Some(blob) => format!("/blob/{account}/{container}/{blob}"),
        None => format!("/blob/{account}/{container}"),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the form Azure Storage documents for `se`.
fn expiry_text(t: SystemTime) -> String {
    let millis = iso8601_millis(t);
    // invariant: `iso8601_millis` writes `YYYY-MM-DDTHH:MM:SS.mmmZ`, 24 ASCII characters.
    format!("{}Z", &millis[..19])
}

fn signature(key: &[u8], text: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    STANDARD.encode(hmac::sign(&key, text.as_bytes()).as_ref())
}

/// Signs a blob token for `container/blob` with `permissions` until `expiry`; the query string
/// without its `?`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use iothub_emulator::hub::file_upload::{blob_sas, StorageAccount};
/// let account = StorageAccount::built_in("a2V5").unwrap();
/// let expiry = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
/// let token = blob_sas::sign(&account, "fileupload", "d1/a.txt", "rcw", expiry);
/// assert!(token.starts_with("sv=2020-12-06&sr=b&sig="));
/// assert!(token.ends_with("&se=2027-01-15T08%3A00%3A00Z&sp=rcw"));
/// ```
#[must_use]
pub fn sign(
    account: &StorageAccount,
    container: &str,
    blob: &str,
    permissions: &str,
    expiry: SystemTime,
) -> String {
    let se = expiry_text(expiry);
    let text = string_to_sign(
        permissions,
        "",
        &se,
        &canonical_resource(&account.name, container, Some(blob)),
        "",
        VERSION,
        "b",
    );
    let sig = signature(&account.key, &text);
    format!(
        "sv={VERSION}&sr=b&sig={}&se={}&sp={permissions}",
        percent::encode(&sig),
        percent::encode(&se)
    )
}

/// Why the built-in endpoint refused a request's SAS token. Never holds the signature.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlobSasRefusal {
    /// The request has no `sig`.
    #[error("the request carries no SAS token")]
    Missing,
    /// A parameter is missing or malformed.
    #[error("SAS parameter {0} is missing or malformed")]
    Malformed(&'static str),
    /// A feature the built-in endpoint does not check (stored policies, IP ranges, …).
    #[error("SAS parameter {0} is not supported by the built-in blob endpoint")]
    Unsupported(&'static str),
    /// A signed version older than the layout checked here.
    #[error("signed version {0} is not supported (2020-12-06 or later)")]
    Version(String),
    /// The token is for another container or blob, or not a blob or container token.
    #[error("the token's resource does not cover this blob")]
    WrongResource,
    /// The token's start time has not come yet.
    #[error("the token is not valid before {0}")]
    NotYetValid(String),
    /// The token has expired.
    #[error("the token expired at {0}")]
    Expired(String),
    /// The token does not grant the operation.
    #[error("the token grants `{granted}`, the operation needs `{needed}`")]
    PermissionDenied {
        /// What the operation needs.
        needed: char,
        /// What the token grants.
        granted: String,
    },
    /// The signature does not match the account key.
    #[error("the signature does not match")]
    SignatureMismatch,
}

/// The request the token must allow.
#[derive(Clone, Copy, Debug)]
pub struct BlobAccess<'a> {
    /// The container.
    pub container: &'a str,
    /// The blob name (decoded).
    pub blob: &'a str,
    /// The permission letter the operation needs (`r`, `c`, `w`, …).
    pub needed: char,
    /// The hub's time.
    pub now: SystemTime,
}

/// Checks the SAS token in `query` (the request's raw query string, other parameters
/// ignored) for `access` with `account`'s key.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use iothub_emulator::hub::file_upload::{blob_sas, StorageAccount};
/// use iothub_emulator::hub::file_upload::blob_sas::{BlobAccess, BlobSasRefusal};
/// let account = StorageAccount::built_in("a2V5").unwrap();
/// let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let token = blob_sas::sign(&account, "c", "d1/a.txt", "rcw", now + Duration::from_secs(60));
/// let access = BlobAccess { container: "c", blob: "d1/a.txt", needed: 'w', now };
/// assert_eq!(blob_sas::verify(&format!("comp=block&{token}"), &account, access), Ok(()));
/// let other = BlobAccess { blob: "d2/a.txt", ..access };
/// assert_eq!(blob_sas::verify(&token, &account, other), Err(BlobSasRefusal::SignatureMismatch));
/// ```
///
/// # Errors
/// The [`BlobSasRefusal`] naming the rule that failed.
pub fn verify(
    query: &str,
    account: &StorageAccount,
    access: BlobAccess<'_>,
) -> Result<(), BlobSasRefusal> {
    let mut p = Params::default();
    for pair in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |name: &'static str| {
            Decoded::new(v)
                .decode()
                .map_err(|_| BlobSasRefusal::Malformed(name))
        };
        match k {
            "sv" => p.sv = Some(decode("sv")?),
            "sr" => p.sr = Some(decode("sr")?),
            "sp" => p.sp = Some(decode("sp")?),
            "st" => p.st = Some(decode("st")?),
            "se" => p.se = Some(decode("se")?),
            "spr" => p.spr = Some(decode("spr")?),
            "sig" => p.sig = Some(decode("sig")?),
            "si" => return Err(BlobSasRefusal::Unsupported("si")),
            "sip" => return Err(BlobSasRefusal::Unsupported("sip")),
            "ses" => return Err(BlobSasRefusal::Unsupported("ses")),
            "skoid" | "sktid" | "skt" | "ske" | "sks" | "skv" => {
                return Err(BlobSasRefusal::Unsupported("user delegation key"));
            }
            "rscc" | "rscd" | "rsce" | "rscl" | "rsct" => {
                return Err(BlobSasRefusal::Unsupported("response headers"));
            }
            _ => {}
        }
    }
    let sig = p.sig.ok_or(BlobSasRefusal::Missing)?;
    let sv = p.sv.ok_or(BlobSasRefusal::Malformed("sv"))?;
    // Versions are dates; the 2020-12-06 layout holds from then on.
    if sv.len() != 10 || sv.as_str() < VERSION {
        return Err(BlobSasRefusal::Version(sv));
    }
    let sr = p.sr.ok_or(BlobSasRefusal::Malformed("sr"))?;
    let resource = match sr.as_str() {
        "b" => canonical_resource(&account.name, access.container, Some(access.blob)),
        "c" => canonical_resource(&account.name, access.container, None),
        _ => return Err(BlobSasRefusal::WrongResource),
    };
    let se = p.se.ok_or(BlobSasRefusal::Malformed("se"))?;
    let expiry = parse_iso8601(&se).ok_or(BlobSasRefusal::Malformed("se"))?;
    let sp = p.sp.ok_or(BlobSasRefusal::Malformed("sp"))?;
    let st = p.st.unwrap_or_default();
    let text = string_to_sign(
        &sp,
        &st,
        &se,
        &resource,
        p.spr.as_deref().unwrap_or(""),
        &sv,
        &sr,
    );
    let sig = STANDARD
        .decode(sig.as_bytes())
        .map_err(|_| BlobSasRefusal::Malformed("sig"))?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &account.key);
    // The signature first: nothing else about a forged token is worth telling its sender.
    hmac::verify(&key, text.as_bytes(), &sig).map_err(|_| BlobSasRefusal::SignatureMismatch)?;
    if !st.is_empty() {
        let start = parse_iso8601(&st).ok_or(BlobSasRefusal::Malformed("st"))?;
        if access.now < start {
            return Err(BlobSasRefusal::NotYetValid(st));
        }
    }
    if access.now >= expiry {
        return Err(BlobSasRefusal::Expired(se));
    }
    if !sp.contains(access.needed) {
        return Err(BlobSasRefusal::PermissionDenied {
            needed: access.needed,
            granted: sp,
        });
    }
    Ok(())
}

#[derive(Default)]
struct Params {
    sv: Option<String>,
    sr: Option<String>,
    sp: Option<String>,
    st: Option<String>,
    se: Option<String>,
    spr: Option<String>,
    sig: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use proptest::prelude::*;

    use super::*;

    fn account() -> StorageAccount {
        StorageAccount::from_connection_string("UseDevelopmentStorage=true").unwrap()
    }

    /// Azure Storage's documented service SAS layout for version 2020-12-06, filled in by
    /// hand for one token, signed with Azurite's published development key.
    #[test]
    fn string_to_sign_has_sixteen_lines_in_the_documented_order() {
        let text = string_to_sign(
            "rcw",
            "",
            "2027-01-15T08:00:00Z",
            "/blob/devstoreaccount1/fileupload/d1/a.txt",
            "",
            "2020-12-06",
            "b",
        );
        assert_eq!(text.split('\n').count(), 16);
        assert_eq!(
            text,
            "rcw\n\n2027-01-15T08:00:00Z\n/blob/devstoreaccount1/fileupload/d1/a.txt\n\n\n\n2020-12-06\nb\n\n\n\n\n\n\n"
        );
    }

    #[test]
    fn each_rule_is_checked() {
        let a = account();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let token = sign(&a, "c", "d/x", "rcw", now + Duration::from_secs(10));
        let ok = BlobAccess {
            container: "c",
            blob: "d/x",
            needed: 'w',
            now,
        };
        assert_eq!(verify(&token, &a, ok), Ok(()));
        let later = BlobAccess {
            now: now + Duration::from_secs(10),
            ..ok
        };
        assert!(matches!(
            verify(&token, &a, later),
            Err(BlobSasRefusal::Expired(_))
        ));
        let delete = BlobAccess { needed: 'd', ..ok };
        assert!(matches!(
            verify(&token, &a, delete),
            Err(BlobSasRefusal::PermissionDenied { needed: 'd', .. })
        ));
        assert_eq!(verify("comp=block", &a, ok), Err(BlobSasRefusal::Missing));
        let tampered = token.replace("sp=rcw", "sp=rcwd");
        assert_eq!(
            verify(&tampered, &a, ok),
            Err(BlobSasRefusal::SignatureMismatch)
        );
        let other_key = StorageAccount::built_in("a2V5").unwrap();
        assert_eq!(
            verify(&token, &other_key, ok),
            Err(BlobSasRefusal::SignatureMismatch)
        );
        let old = token.replace("sv=2020-12-06", "sv=2019-02-02");
        assert!(matches!(
            verify(&old, &a, ok),
            Err(BlobSasRefusal::Version(_))
        ));
        assert_eq!(
            verify(&format!("{token}&si=policy"), &a, ok),
            Err(BlobSasRefusal::Unsupported("si"))
        );
    }

    proptest! {
        /// Whatever the query, verification answers without panicking, and only a token
        /// signed with the key passes.
        #[test]
        fn arbitrary_queries_never_pass(query in "[a-z=&%0-9A-F+/:.-]{0,200}") {
            let access = BlobAccess {
                container: "c",
                blob: "d/x",
                needed: 'r',
                now: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            };
            prop_assert!(verify(&query, &account(), access).is_err());
        }

        /// Every token the hub signs verifies for its own blob, before its expiry.
        #[test]
        fn signed_tokens_verify(blob in "[a-z0-9]{1,8}/[a-zA-Z0-9 ._~!$'()*+,;=:@-]{1,40}", secs in 1u64..100_000) {
            let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
            let a = account();
            let token = sign(&a, "fileupload", &blob, "rcw", now + Duration::from_secs(secs));
            let access = BlobAccess { container: "fileupload", blob: &blob, needed: 'r', now };
            prop_assert_eq!(verify(&token, &a, access), Ok(()));
        }
    }
}
