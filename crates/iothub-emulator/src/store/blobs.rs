//! The built-in blob endpoint's files (docs/file-upload.md "The built-in blob endpoint"):
//! block blobs under `<data-dir>/blobs/`, or under a private temporary directory for a hub
//! without a data dir (removed when the store is dropped).
//!
//! Layout: each blob is `data/{h}` with its properties in `data/{h}.json`, where `{h}` is the
//! hex SHA-256 of `{container}/{blob}` (so no blob name ever becomes a path); its staged,
//! uncommitted blocks are `blocks/{h}/{hex of the block id}`. Every file is written under
//! `tmp/` first and renamed into place, so a reader sees a blob whole or not at all, and a
//! block list is committed by one rename.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use ring::digest;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::hub::ids;

/// Largest body of one Put Blob (Azure's limit for a single Put Blob before version
/// 2019-12-12; SDKs switch to blocks far below it).
pub const MAX_PUT_BLOB_BYTES: u64 = 256 * 1024 * 1024;
/// Largest block (Azure's limit before version 2019-12-12).
pub const MAX_BLOCK_BYTES: u64 = 100 * 1024 * 1024;
/// Most blocks in one block list (Azure's limit).
pub const MAX_BLOCKS: usize = 50_000;
/// Largest committed blob the built-in endpoint keeps.
pub const MAX_BLOB_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Longest block id, decoded (Azure's limit).
pub const MAX_BLOCK_ID_BYTES: usize = 64;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobStoreError {
    /// The body is larger than the operation allows.
    #[error("the body is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The body could not be read from the client.
    #[error("the request body could not be read")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A block list names a block that is not staged.
    #[error("block {0} is not staged")]
    UnknownBlock(String),
    /// A block id is not base64 or longer than 64 bytes.
    #[error("invalid block id")]
    InvalidBlockId,
    /// A block list is malformed or too long.
    #[error("invalid block list: {0}")]
    InvalidBlockList(&'static str),
    /// The file system failed.
    #[error("blob file system error")]
    Io(#[from] io::Error),
}

/// Properties kept beside a blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobProperties {
    /// The container.
    pub container: String,
    /// The blob name.
    pub blob: String,
    /// `Content-Type` as uploaded (`x-ms-blob-content-type` or the Put Blob's own).
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Quoted ETag.
    pub etag: String,
    /// Last write, Unix ms.
    pub last_modified_ms: i64,
}

/// Which list a block of a Put Block List comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// `<Latest>`: the staged block (the built-in endpoint keeps no committed blocks).
    Latest,
    /// `<Uncommitted>`.
    Uncommitted,
    /// `<Committed>`: not kept by the built-in endpoint, so always unknown.
    Committed,
}

/// Parses a Put Block List body:
/// `<?xml …?><BlockList><Latest>id</Latest><Uncommitted>id</Uncommitted>…</BlockList>`
/// (ids as sent: base64). Whitespace between elements is ignored; nothing else is accepted.
///
/// ```
/// use iothub_emulator::store::blobs::{parse_block_list, BlockKind};
/// let xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<BlockList><Latest>QUE=</Latest>\
///            <Uncommitted>QUI=</Uncommitted></BlockList>";
/// assert_eq!(
///     parse_block_list(xml).unwrap(),
///     vec![(BlockKind::Latest, "QUE=".to_owned()), (BlockKind::Uncommitted, "QUI=".to_owned())]
/// );
/// assert!(parse_block_list("<BlockList><Latest>x").is_err());
/// ```
///
/// # Errors
/// [`BlobStoreError::InvalidBlockList`] naming what is wrong.
pub fn parse_block_list(xml: &str) -> Result<Vec<(BlockKind, String)>, BlobStoreError> {
    let bad = BlobStoreError::InvalidBlockList;
    let mut rest = xml.trim_start_matches('\u{feff}').trim_start();
    if rest.starts_with("<?xml") {
        let end = rest.find("?>").ok_or(bad("unterminated XML declaration"))?;
        rest = rest[end + 2..].trim_start();
    }
    rest = rest
        .strip_prefix("<BlockList>")
        .ok_or(bad("the root element must be <BlockList>"))?;
    let mut blocks = Vec::new();
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("</BlockList>") {
            if !after.trim().is_empty() {
                return Err(bad("content after </BlockList>"));
            }
            return Ok(blocks);
        }
        let (kind, tag) = if rest.starts_with("<Latest>") {
            (BlockKind::Latest, "Latest")
        } else if rest.starts_with("<Uncommitted>") {
            (BlockKind::Uncommitted, "Uncommitted")
        } else if rest.starts_with("<Committed>") {
            (BlockKind::Committed, "Committed")
        } else {
            return Err(bad(
                "expected <Latest>, <Uncommitted>, <Committed> or </BlockList>",
            ));
        };
        rest = &rest[tag.len() + 2..];
        let close = format!("</{tag}>");
        let end = rest.find(&close).ok_or(bad("unterminated block element"))?;
        let id = rest[..end].trim();
        if id.is_empty() || id.contains('<') {
            return Err(bad("a block id must be text"));
        }
        if blocks.len() >= MAX_BLOCKS {
            return Err(bad("more than 50,000 blocks"));
        }
        blocks.push((kind, id.to_owned()));
        rest = &rest[end + close.len()..];
    }
}

/// Checks a block id (base64, at most 64 bytes decoded) and names its staging file.
fn block_file(block_id: &str) -> Result<String, BlobStoreError> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(block_id)
        .map_err(|_| BlobStoreError::InvalidBlockId)?;
    if raw.is_empty() || raw.len() > MAX_BLOCK_ID_BYTES {
        return Err(BlobStoreError::InvalidBlockId);
    }
    Ok(ids::hex(&raw))
}

/// The built-in blob endpoint's files.
#[derive(Debug)]
pub struct BlobStore {
    root: PathBuf,
    /// Removed on drop (a hub without a data dir).
    temporary: bool,
}

impl Drop for BlobStore {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

impl BlobStore {
    /// A store under `root` (created owner-only if missing).
    ///
    /// # Errors
    /// The file system's.
    pub fn open(root: &Path) -> io::Result<Self> {
        for sub in ["data", "blocks", "tmp"] {
            crate::data_dir::create_private_dir(&root.join(sub))?;
        }
        // Temporary files of a previous run that stopped mid-write are garbage.
        if let Ok(entries) = std::fs::read_dir(root.join("tmp")) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(Self {
            root: root.to_owned(),
            temporary: false,
        })
    }

    /// A store in a new private temporary directory, removed when the store is dropped.
    ///
    /// # Errors
    /// The file system's.
    pub fn temporary() -> io::Result<Self> {
        let root = std::env::temp_dir().join(format!("iothub-blobs-{}", ids::uuid_v4()));
        let mut store = Self::open(&root)?;
        store.temporary = true;
        Ok(store)
    }

    fn key(container: &str, blob: &str) -> String {
        let d = digest::digest(&digest::SHA256, format!("{container}/{blob}").as_bytes());
        ids::hex(d.as_ref())
    }

    fn data_path(&self, key: &str) -> PathBuf {
        self.root.join("data").join(key)
    }

    fn props_path(&self, key: &str) -> PathBuf {
        self.root.join("data").join(format!("{key}.json"))
    }

    fn temp_path(&self) -> PathBuf {
        self.root.join("tmp").join(ids::uuid_v4())
    }

    /// Streams `body` into a new temporary file, refusing more than `limit` bytes; returns the
    /// file's path and size. The file is removed on failure.
    async fn receive<S, E>(&self, body: S, limit: u64) -> Result<(PathBuf, u64), BlobStoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::error::Error + Send + Sync + 'static,
    {
        let path = self.temp_path();
        let written = write_stream(&path, body, limit).await;
        match written {
            Ok(n) => Ok((path, n)),
            Err(e) => {
                let _ = tokio::fs::remove_file(&path).await;
                Err(e)
            }
        }
    }

    async fn write_props(&self, key: &str, props: &BlobProperties) -> Result<(), BlobStoreError> {
        let text = serde_json::to_vec(props).unwrap_or_default();
        let tmp = self.temp_path();
        tokio::fs::write(&tmp, text).await?;
        tokio::fs::rename(&tmp, self.props_path(key)).await?;
        Ok(())
    }

    async fn commit(
        &self,
        key: &str,
        data: &Path,
        container: &str,
        blob: &str,
        content_type: &str,
        size: u64,
    ) -> Result<BlobProperties, BlobStoreError> {
        let now = SystemTime::now();
        let props = BlobProperties {
            container: container.to_owned(),
            blob: blob.to_owned(),
            content_type: content_type.to_owned(),
            size,
            etag: format!(
                "\"0x{}\"",
                ids::hex(&ids::random_bytes::<8>()).to_uppercase()
            ),
            last_modified_ms: crate::timestamp::unix_millis(now),
        };
        // Data first, then its properties: `get` sizes the data from the file itself, so a
        // reader between the two renames still gets one whole blob.
        tokio::fs::rename(data, self.data_path(key)).await?;
        self.write_props(key, &props).await?;
        Ok(props)
    }

    /// Put Blob: replaces `container/blob` with `body` (at most [`MAX_PUT_BLOB_BYTES`]).
    ///
    /// # Errors
    /// [`BlobStoreError::TooLarge`], [`BlobStoreError::Body`], [`BlobStoreError::Io`].
    pub async fn put_blob<S, E>(
        &self,
        container: &str,
        blob: &str,
        content_type: &str,
        body: S,
    ) -> Result<BlobProperties, BlobStoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::error::Error + Send + Sync + 'static,
    {
        let key = Self::key(container, blob);
        let (tmp, size) = self.receive(body, MAX_PUT_BLOB_BYTES).await?;
        let committed = self
            .commit(&key, &tmp, container, blob, content_type, size)
            .await;
        if committed.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        // A Put Blob discards the blob's uncommitted blocks, as Azure Storage does.
        let _ = tokio::fs::remove_dir_all(self.root.join("blocks").join(&key)).await;
        committed
    }

    /// Put Block: stages `body` (at most [`MAX_BLOCK_BYTES`]) as block `block_id` of
    /// `container/blob`; returns its size.
    ///
    /// # Errors
    /// [`BlobStoreError::InvalidBlockId`], [`BlobStoreError::TooLarge`],
    /// [`BlobStoreError::Body`], [`BlobStoreError::Io`].
    pub async fn put_block<S, E>(
        &self,
        container: &str,
        blob: &str,
        block_id: &str,
        body: S,
    ) -> Result<u64, BlobStoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::error::Error + Send + Sync + 'static,
    {
        let file = block_file(block_id)?;
        let dir = self.root.join("blocks").join(Self::key(container, blob));
        tokio::fs::create_dir_all(&dir).await?;
        let (tmp, size) = self.receive(body, MAX_BLOCK_BYTES).await?;
        if let Err(e) = tokio::fs::rename(&tmp, dir.join(file)).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e.into());
        }
        Ok(size)
    }

    /// Put Block List: commits the listed staged blocks, in order, as `container/blob` and
    /// discards the staged blocks.
    ///
    /// # Errors
    /// [`BlobStoreError::UnknownBlock`] (a `<Committed>` block included: none are kept),
    /// [`BlobStoreError::InvalidBlockId`], [`BlobStoreError::TooLarge`],
    /// [`BlobStoreError::Io`].
    pub async fn put_block_list(
        &self,
        container: &str,
        blob: &str,
        content_type: &str,
        blocks: &[(BlockKind, String)],
    ) -> Result<BlobProperties, BlobStoreError> {
        let key = Self::key(container, blob);
        let dir = self.root.join("blocks").join(&key);
        let mut sources = Vec::with_capacity(blocks.len());
        for (kind, id) in blocks {
            let path = dir.join(block_file(id)?);
            if *kind == BlockKind::Committed || !tokio::fs::try_exists(&path).await? {
                return Err(BlobStoreError::UnknownBlock(id.clone()));
            }
            sources.push(path);
        }
        let tmp = self.temp_path();
        let size = match concatenate(&tmp, &sources).await {
            Ok(size) => size,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        let committed = self
            .commit(&key, &tmp, container, blob, content_type, size)
            .await;
        if committed.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        } else {
            let _ = tokio::fs::remove_dir_all(&dir).await;
        }
        committed
    }

    /// A committed blob's properties and an open file positioned at its start.
    ///
    /// # Errors
    /// The file system's (`Ok(None)` when there is no such blob).
    pub async fn open_blob(
        &self,
        container: &str,
        blob: &str,
    ) -> Result<Option<(BlobProperties, tokio::fs::File)>, BlobStoreError> {
        let key = Self::key(container, blob);
        let props = match tokio::fs::read(self.props_path(&key)).await {
            Ok(bytes) => serde_json::from_slice::<BlobProperties>(&bytes).ok(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(mut props) = props else {
            return Ok(None);
        };
        let file = match tokio::fs::File::open(self.data_path(&key)).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        props.size = file.metadata().await?.len();
        Ok(Some((props, file)))
    }

    /// A committed blob's size, if there is one.
    pub async fn size(&self, container: &str, blob: &str) -> Option<u64> {
        let key = Self::key(container, blob);
        tokio::fs::metadata(self.data_path(&key))
            .await
            .ok()
            .map(|m| m.len())
    }
}

async fn write_stream<S, E>(path: &Path, body: S, limit: u64) -> Result<u64, BlobStoreError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut file = tokio::fs::File::create(path).await?;
    let mut written = 0u64;
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| BlobStoreError::Body(Box::new(e)))?;
        written += chunk.len() as u64;
        if written > limit {
            return Err(BlobStoreError::TooLarge { limit });
        }
        file.write_all(&chunk).await?;
    }
    // On disk before it is renamed into place and answered.
    file.sync_data().await?;
    Ok(written)
}

async fn concatenate(target: &Path, sources: &[PathBuf]) -> Result<u64, BlobStoreError> {
    let mut out = tokio::fs::File::create(target).await?;
    let mut size = 0u64;
    for source in sources {
        let mut input = tokio::fs::File::open(source).await?;
        size += tokio::io::copy(&mut input, &mut out).await?;
        if size > MAX_BLOB_BYTES {
            return Err(BlobStoreError::TooLarge {
                limit: MAX_BLOB_BYTES,
            });
        }
    }
    out.sync_data().await?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use proptest::prelude::*;
    use tokio::io::AsyncReadExt;

    use super::*;

    fn body(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
        futures_util::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    async fn read(store: &BlobStore, c: &str, b: &str) -> Option<Vec<u8>> {
        let (_, mut f) = store.open_blob(c, b).await.unwrap()?;
        let mut out = Vec::new();
        f.read_to_end(&mut out).await.unwrap();
        Some(out)
    }

    #[tokio::test]
    async fn blocks_commit_in_list_order_and_are_discarded() {
        let store = BlobStore::temporary().unwrap();
        let root = store.root.clone();
        store
            .put_block("c", "d/x", "QQ==", body(&[b"aa", b"a"]))
            .await
            .unwrap();
        store
            .put_block("c", "d/x", "Qg==", body(&[b"bbb"]))
            .await
            .unwrap();
        assert_eq!(
            read(&store, "c", "d/x").await,
            None,
            "nothing before commit"
        );
        let list = [
            (BlockKind::Latest, "Qg==".to_owned()),
            (BlockKind::Uncommitted, "QQ==".to_owned()),
        ];
        let props = store
            .put_block_list("c", "d/x", "text/plain", &list)
            .await
            .unwrap();
        assert_eq!(props.size, 6);
        assert_eq!(read(&store, "c", "d/x").await.unwrap(), b"bbbaaa");
        assert_eq!(store.size("c", "d/x").await, Some(6));
        // The staged blocks are gone: committing them again fails.
        let again = store.put_block_list("c", "d/x", "", &list).await;
        assert!(matches!(again, Err(BlobStoreError::UnknownBlock(_))));
        assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0);
        drop(store);
        assert!(!root.exists(), "a temporary store is removed on drop");
    }

    #[tokio::test]
    async fn oversized_bodies_leave_nothing_behind() {
        let store = BlobStore::temporary().unwrap();
        // Every operation receives its body this way, with its own limit.
        let e = store.receive(body(&[b"abc", b"de"]), 4).await.unwrap_err();
        assert!(matches!(e, BlobStoreError::TooLarge { limit: 4 }));
        assert_eq!(
            std::fs::read_dir(store.root.join("tmp")).unwrap().count(),
            0
        );
        let bad_id = store
            .put_block("c", "b", "not base64!", body(&[b"x"]))
            .await;
        assert!(matches!(bad_id, Err(BlobStoreError::InvalidBlockId)));
        let put = store
            .put_blob("c", "b", "application/octet-stream", body(&[b"whole"]))
            .await
            .unwrap();
        assert_eq!(put.size, 5);
        assert_eq!(read(&store, "c", "b").await.unwrap(), b"whole");
    }

    proptest! {
        /// Any text: the parser answers without panicking.
        #[test]
        fn block_list_parser_never_panics(text in "\\PC{0,300}") {
            let _ = parse_block_list(&text);
        }

        /// Every list the SDKs write parses back to its ids, in order.
        #[test]
        fn written_lists_parse_back(ids in proptest::collection::vec("[A-Za-z0-9+/]{4,8}={0,2}", 0..20)) {
            let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<BlockList>");
            for id in &ids {
                xml.push_str(&format!("<Latest>{id}</Latest>"));
            }
            xml.push_str("</BlockList>");
            let parsed = parse_block_list(&xml).unwrap();
            prop_assert_eq!(parsed.into_iter().map(|(_, id)| id).collect::<Vec<_>>(), ids);
        }
    }
}
