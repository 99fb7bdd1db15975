//! The optional durable outbox: one file per accepted telemetry message, removed on PUBACK.
//!
//! A message is acknowledged to the application as *accepted* only after its file is synced,
//! so messages accepted while offline survive a process restart (the optional durable
//! outbox). File names are zero-padded sequence numbers so a directory listing sorts in
//! acceptance order. Format: `u32` big-endian topic length, topic bytes, body bytes.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::Error;

/// A directory of pending messages.
#[derive(Debug)]
pub(crate) struct DurableOutbox {
    dir: PathBuf,
    next_seq: u64,
}

/// A message read back from disk.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct StoredMessage {
    pub(crate) path: PathBuf,
    pub(crate) topic: String,
    pub(crate) payload: Bytes,
}

impl DurableOutbox {
    /// Opens (creating) `dir` and returns the messages left by a previous process, oldest first.
    pub(crate) fn open(dir: &Path) -> Result<(Self, Vec<StoredMessage>), Error> {
        fs::create_dir_all(dir).map_err(Error::Storage)?;
        let mut names: Vec<(u64, PathBuf)> = fs::read_dir(dir)
            .map_err(Error::Storage)?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let path = entry.path();
                let seq = path
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".msg")?
                    .parse()
                    .ok()?;
                Some((seq, path))
            })
            .collect();
        names.sort();
        let next_seq = names.last().map_or(0, |(seq, _)| seq + 1);
        let mut stored = Vec::with_capacity(names.len());
        for (_, path) in names {
            let data = fs::read(&path).map_err(Error::Storage)?;
            match decode(&data) {
                Some((topic, payload)) => stored.push(StoredMessage {
                    path,
                    topic,
                    payload,
                }),
                // A torn write from a crash before the sync: it was never reported accepted.
                None => fs::remove_file(&path).map_err(Error::Storage)?,
            }
        }
        Ok((
            Self {
                dir: dir.to_owned(),
                next_seq,
            },
            stored,
        ))
    }

    /// Writes and syncs one message; returns its file.
    pub(crate) fn put(&mut self, topic: &str, payload: &[u8]) -> Result<PathBuf, Error> {
        let path = self.dir.join(format!("{:020}.msg", self.next_seq));
        self.next_seq += 1;
        let tmp = path.with_extension("tmp");
        let topic_len = u32::try_from(topic.len()).map_err(|_| Error::InvalidInput {
            field: "topic",
            reason: "longer than 4 GiB",
        })?;
        let write = || -> io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&topic_len.to_be_bytes())?;
            file.write_all(topic.as_bytes())?;
            file.write_all(payload)?;
            file.sync_all()?;
            // Rename is atomic: a reader sees the whole message or none of it.
            fs::rename(&tmp, &path)?;
            fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(Error::Storage)?;
        Ok(path)
    }

    /// Forgets a delivered message.
    pub(crate) fn remove(&self, path: &Path) -> Result<(), Error> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Storage(e)),
        }
    }
}

fn decode(data: &[u8]) -> Option<(String, Bytes)> {
    let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?);
    let end = 4usize.checked_add(usize::try_from(len).ok()?)?;
    let topic = std::str::from_utf8(data.get(4..end)?).ok()?.to_owned();
    Some((topic, Bytes::copy_from_slice(&data[end..])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("iothub-device-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn messages_survive_reopen_in_order_until_removed() {
        let dir = temp_dir("reopen");
        let (mut outbox, left) = DurableOutbox::open(&dir).unwrap();
        assert!(left.is_empty());
        let a = outbox.put("t/a", b"one").unwrap();
        outbox.put("t/b", b"two").unwrap();
        outbox.remove(&a).unwrap();
        drop(outbox);

        let (mut outbox, left) = DurableOutbox::open(&dir).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].topic, "t/b");
        assert_eq!(&left[0].payload[..], b"two");
        let c = outbox.put("t/c", b"").unwrap();
        assert!(c > left[0].path, "new files sort after old ones");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn discards_torn_files() {
        let dir = temp_dir("torn");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("00000000000000000007.msg"), [0, 0, 0, 9, b'x']).unwrap();
        let (_, left) = DurableOutbox::open(&dir).unwrap();
        assert!(left.is_empty());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        let _ = fs::remove_dir_all(&dir);
    }
}
