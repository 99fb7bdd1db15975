//! The storage account file uploads go to (docs/file-upload.md "Storage"): an Azure Storage
//! account named by its connection string (`--storage-connection-string`: a real account or
//! Azurite), or the emulator's own blob endpoint.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The account name of the emulator's built-in blob endpoint; its blobs are served under
/// `/{BUILTIN_ACCOUNT}/{container}/{blob}` on the emulator's HTTP and HTTPS ports, path-style
/// as Azurite serves `devstoreaccount1`.
pub const BUILTIN_ACCOUNT: &str = "iothubemulator";

/// Azurite's documented development account (`UseDevelopmentStorage=true`).
const DEV_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's documented development key (public; it protects nothing).
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Where uploaded files go.
#[derive(Clone, Debug, Default)]
pub enum FileUploadStorage {
    /// Nowhere: every upload request is refused (400, "no storage configured").
    #[default]
    None,
    /// The emulator's own blob endpoint, reached at the host the device used for the hub;
    /// tokens are signed with `account`'s key, blobs are kept in `blobs`.
    BuiltIn {
        /// The built-in account ([`StorageAccount::built_in`]).
        account: StorageAccount,
        /// Where its blobs are kept.
        blobs: std::sync::Arc<crate::store::blobs::BlobStore>,
    },
    /// An Azure Storage account (or Azurite) at `account.host_name`.
    External(StorageAccount),
}

/// A storage account: its name, its key and the host devices upload to.
#[derive(Clone)]
pub struct StorageAccount {
    /// The account name (signed into every token's canonical resource).
    pub name: String,
    /// The decoded account key.
    pub key: Vec<u8>,
    /// Host, port and path prefix of its blob endpoint, without the scheme
    /// (`acct.blob.core.windows.net`, `127.0.0.1:10000/devstoreaccount1`); empty for the
    /// built-in endpoint, whose host is the one each device reached the hub at.
    pub host_name: String,
}

impl std::fmt::Debug for StorageAccount {
    /// The key is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageAccount")
            .field("name", &self.name)
            .field("key", &"<redacted>")
            .field("host_name", &self.host_name)
            .finish()
    }
}

/// Why a storage connection string was not accepted. Never holds the key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageConnectionStringError {
    /// A part is not `Name=value`.
    #[error("`{0}` is not Name=value")]
    MalformedPart(String),
    /// A required part is absent.
    #[error("the connection string has no {0}")]
    Missing(&'static str),
    /// `AccountKey` is not base64.
    #[error("AccountKey is not base64")]
    KeyNotBase64,
    /// `BlobEndpoint` is not an `http(s)://` URL.
    #[error("BlobEndpoint `{0}` is not an http:// or https:// URL")]
    BadEndpoint(String),
}

impl StorageAccount {
    /// The built-in endpoint's account with `key` (base64).
    ///
    /// # Errors
    /// [`StorageConnectionStringError::KeyNotBase64`].
    pub fn built_in(key: &str) -> Result<Self, StorageConnectionStringError> {
        Ok(Self {
            name: BUILTIN_ACCOUNT.to_owned(),
            key: STANDARD
                .decode(key)
                .map_err(|_| StorageConnectionStringError::KeyNotBase64)?,
            host_name: String::new(),
        })
    }

    /// Parses an Azure Storage connection string: `AccountName`, `AccountKey` and either
    /// `BlobEndpoint` or `DefaultEndpointsProtocol` + `EndpointSuffix` (default
    /// `core.windows.net`); `UseDevelopmentStorage=true` is Azurite's development account on
    /// `127.0.0.1:10000`.
    ///
    /// ```
    /// use iothub_emulator::hub::file_upload::StorageAccount;
    /// let a = StorageAccount::from_connection_string(
    ///     "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
    /// ).unwrap();
    /// assert_eq!((a.name.as_str(), a.host_name.as_str()), ("acct", "acct.blob.core.windows.net"));
    /// let azurite = StorageAccount::from_connection_string("UseDevelopmentStorage=true").unwrap();
    /// assert_eq!(azurite.host_name, "127.0.0.1:10000/devstoreaccount1");
    /// ```
    ///
    /// # Errors
    /// [`StorageConnectionStringError`] naming the part that is wrong.
    pub fn from_connection_string(text: &str) -> Result<Self, StorageConnectionStringError> {
        let mut name = None;
        let mut key = None;
        let mut endpoint = None;
        let mut suffix = None;
        let mut development = false;
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                // Only the name is echoed: a malformed part could be the key.
                let shown = part.chars().take(24).collect();
                return Err(StorageConnectionStringError::MalformedPart(shown));
            };
            match k.trim() {
                "AccountName" => name = Some(v.trim().to_owned()),
                "AccountKey" => key = Some(v.trim().to_owned()),
                "BlobEndpoint" => endpoint = Some(v.trim().to_owned()),
                "EndpointSuffix" => suffix = Some(v.trim().to_owned()),
                "UseDevelopmentStorage" => development = v.trim().eq_ignore_ascii_case("true"),
                // DefaultEndpointsProtocol and the other services' endpoints do not matter:
                // devices always upload over HTTPS to the blob endpoint.
                _ => {}
            }
        }
        if development {
            name.get_or_insert_with(|| DEV_ACCOUNT.to_owned());
            key.get_or_insert_with(|| DEV_KEY.to_owned());
            endpoint.get_or_insert_with(|| format!("http://127.0.0.1:10000/{DEV_ACCOUNT}"));
        }
        let name = name.ok_or(StorageConnectionStringError::Missing("AccountName"))?;
        let key = key.ok_or(StorageConnectionStringError::Missing("AccountKey"))?;
        let key = STANDARD
            .decode(key)
            .map_err(|_| StorageConnectionStringError::KeyNotBase64)?;
        let host_name = match endpoint {
            Some(url) => {
                let rest = url
                    .strip_prefix("https://")
                    .or_else(|| url.strip_prefix("http://"))
                    .filter(|r| !r.is_empty())
                    .ok_or_else(|| StorageConnectionStringError::BadEndpoint(url.clone()))?;
                rest.trim_end_matches('/').to_owned()
            }
            None => format!(
                "{name}.blob.{}",
                suffix.as_deref().unwrap_or("core.windows.net")
            ),
        };
        Ok(Self {
            name,
            key,
            host_name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_endpoint_wins_and_loses_its_scheme_and_slash() {
        let a = StorageAccount::from_connection_string(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;",
        )
        .unwrap();
        assert_eq!(a.host_name, "127.0.0.1:10000/devstoreaccount1");
        assert_eq!(a.key, b"key");
    }

    #[test]
    fn missing_or_bad_parts_are_named_and_the_key_is_never_shown() {
        assert_eq!(
            StorageAccount::from_connection_string("AccountKey=a2V5").unwrap_err(),
            StorageConnectionStringError::Missing("AccountName")
        );
        assert_eq!(
            StorageAccount::from_connection_string("AccountName=a;AccountKey=!!").unwrap_err(),
            StorageConnectionStringError::KeyNotBase64
        );
        let e = StorageAccount::from_connection_string(
            "AccountName=a;AccountKey=a2V5;BlobEndpoint=ftp://x",
        )
        .unwrap_err();
        assert!(matches!(e, StorageConnectionStringError::BadEndpoint(_)));
        let a =
            StorageAccount::from_connection_string("AccountName=a;AccountKey=c2VjcmV0").unwrap();
        assert!(!format!("{a:?}").contains("secret"));
        assert!(!format!("{a:?}").contains("c2VjcmV0"));
    }
}
