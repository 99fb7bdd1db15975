//! What a device sends for a file upload is untrusted: the JSON bodies of its two hub
//! requests, the SAS query and the block list it sends the built-in blob endpoint, and (from
//! the command line) a storage connection string.
//! Invariants: no parser panics; a query without the hub's signature never verifies; the
//! block ids of a parsed block list are non-empty text.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use iothub_emulator::hub::file_upload::blob_sas::{self, BlobAccess};
use iothub_emulator::hub::file_upload::{self, StorageAccount};
use iothub_emulator::store::blobs::parse_block_list;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = file_upload::parse_sas_request(data);
    let _ = file_upload::parse_outcome(data);
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    let _ = StorageAccount::from_connection_string(text);
    let _ = file_upload::validate_blob_name(text);
    if let Ok(blocks) = parse_block_list(text) {
        assert!(blocks.iter().all(|(_, id)| !id.is_empty() && !id.contains('<')));
    }
    // invariant: a constant, valid base64 key.
    let account = StorageAccount::built_in("a2V5").unwrap();
    let access = BlobAccess {
        container: "fileupload",
        blob: "d1/a.txt",
        needed: 'w',
        now: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    };
    assert!(blob_sas::verify(text, &account, access).is_err() || text.contains("sig="));
});
