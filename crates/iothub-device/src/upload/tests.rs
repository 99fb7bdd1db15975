//! The sans-IO rules of a file upload: block planning, block ids and the block list, the
//! hub's SAS URI answer and the URLs built from it, the notification, retries.

use std::time::Duration;

use base64::Engine as _;
use proptest::prelude::*;

use super::plan::*;
use crate::{Error, UploadError};

const MIB: usize = 1024 * 1024;

#[test]
fn block_size_is_the_preferred_one_while_the_blob_fits_in_50000_blocks() {
    assert_eq!(block_size(4 * MIB, None).unwrap(), 4 * MIB);
    assert_eq!(block_size(4 * MIB, Some(0)).unwrap(), 4 * MIB);
    // 50,000 blocks of 4 MiB exactly.
    let limit = MAX_BLOCKS * 4 * MIB as u64;
    assert_eq!(block_size(4 * MIB, Some(limit)).unwrap(), 4 * MIB);
    // One byte more needs 5 MiB blocks.
    assert_eq!(block_size(4 * MIB, Some(limit + 1)).unwrap(), 5 * MIB);
    assert_eq!(block_size(0, None).unwrap(), 1);
    assert_eq!(block_size(usize::MAX, None).unwrap(), MAX_BLOCK_SIZE);
}

#[test]
fn a_source_over_the_block_blob_limit_is_refused_before_anything_is_sent() {
    assert_eq!(
        block_size(4 * MIB, Some(MAX_BLOB_SIZE)).unwrap(),
        MAX_BLOCK_SIZE
    );
    let err = block_size(4 * MIB, Some(MAX_BLOB_SIZE + 1)).unwrap_err();
    assert!(matches!(
        err,
        UploadError::TooLarge { size, limit } if size == MAX_BLOB_SIZE + 1 && limit == MAX_BLOB_SIZE
    ));
    assert!(!err.is_retriable());
}

proptest! {
    #[test]
    fn planned_blocks_never_exceed_the_storage_limits(
        preferred in 1usize..=(64 * MIB),
        total in 0u64..=MAX_BLOB_SIZE,
    ) {
        let size = block_size(preferred, Some(total)).unwrap();
        prop_assert!(size <= MAX_BLOCK_SIZE);
        prop_assert!(size >= preferred.min(MAX_BLOCK_SIZE));
        prop_assert!(total.div_ceil(size as u64) <= MAX_BLOCKS);
    }

    #[test]
    fn any_hub_answer_parses_or_is_refused_without_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = SasUri::parse(&body);
        let _ = storage_error_code(None, &body);
    }

    #[test]
    fn any_blob_name_segment_survives_the_url(name in "[^/\\x00-\\x1f]{1,40}(/[^/\\x00-\\x1f]{1,40}){0,3}") {
        let sas = SasUri {
            correlation_id: "c".into(),
            host_name: "acct.blob.core.windows.net".into(),
            container_name: "files".into(),
            blob_name: format!("dev1/{name}"),
            sas_token: "sv=x".into(),
        };
        let url = sas.blob_url("https");
        let path = url.strip_prefix("https://acct.blob.core.windows.net/files/").unwrap();
        let segments: Vec<String> = path
            .split('/')
            .map(|s| String::from_utf8(iothub_proto::percent::Decoded::new(s).bytes().collect()).unwrap())
            .collect();
        prop_assert_eq!(segments.join("/"), format!("dev1/{name}"));
        prop_assert!(!path.contains(['?', '#', ' ']));
    }
}

#[test]
fn block_ids_have_one_length_and_decode_to_their_index() {
    let ids: Vec<String> = [0, 1, 9, 10, 49_999, u32::MAX].map(block_id).to_vec();
    assert!(ids.iter().all(|id| id.len() == ids[0].len()), "{ids:?}");
    assert!(ids[0].len() <= 64);
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&ids[4])
        .unwrap();
    assert_eq!(decoded, b"block-0000049999");
    assert_ne!(ids[1], ids[2]);
}

#[test]
fn block_list_commits_every_block_in_order() {
    let xml = block_list_xml(3);
    assert_eq!(
        xml,
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>{}</Latest><Latest>{}</Latest><Latest>{}</Latest></BlockList>",
            block_id(0),
            block_id(1),
            block_id(2)
        )
    );
    // An empty source commits an empty blob.
    assert_eq!(
        block_list_xml(0),
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList></BlockList>"
    );
}

/// The answer a real hub sends (docs/file-upload.md): the SAS starts with `?`.
const AZURE_ANSWER: &str = r#"{
    "correlationId": "MjAyMTA0MjAxNzE0XzQ1ZTg3N2I0LWY3ZDUtNDA0Ny1hNjY0LTU4ZjQ0ODBiZjcwZg==",
    "hostName": "contosostorage.blob.core.windows.net",
    "containerName": "fileupload",
    "blobName": "dev1/logs/today.txt",
    "sasToken": "?sv=2018-03-28&sr=b&sig=abc%2Bdef%3D&se=2021-04-20T18%3A14%3A02Z&sp=rw"
}"#;

#[test]
fn parses_the_hub_answer_and_builds_the_blob_urls() {
    let sas = SasUri::parse(AZURE_ANSWER.as_bytes()).unwrap();
    assert_eq!(sas.blob_name, "dev1/logs/today.txt");
    assert_eq!(
        sas.sas_token,
        "sv=2018-03-28&sr=b&sig=abc%2Bdef%3D&se=2021-04-20T18%3A14%3A02Z&sp=rw"
    );
    assert_eq!(
        sas.blob_url("https"),
        "https://contosostorage.blob.core.windows.net/fileupload/dev1/logs/today.txt"
    );
    let block = sas.put_block_url("https", 0);
    assert_eq!(
        block,
        format!(
            "https://contosostorage.blob.core.windows.net/fileupload/dev1/logs/today.txt?{}&comp=block&blockid={}",
            sas.sas_token,
            iothub_proto::percent::encode(&block_id(0))
        )
    );
    assert!(
        sas.put_block_list_url("https")
            .ends_with("&sp=rw&comp=blocklist")
    );
}

#[test]
fn a_path_style_storage_host_keeps_its_port_and_account() {
    // Azurite and the emulator's built-in blob endpoint put the account in the path.
    let sas = SasUri::parse(
        br#"{"correlationId":"c1","hostName":"127.0.0.1:10000/devstoreaccount1","containerName":"fileupload","blobName":"dev 1/a b+c.txt","sasToken":"sv=2020-10-02&sig=x"}"#,
    )
    .unwrap();
    assert_eq!(sas.sas_token, "sv=2020-10-02&sig=x");
    assert_eq!(
        sas.blob_url("http"),
        "http://127.0.0.1:10000/devstoreaccount1/fileupload/dev%201/a%20b%2Bc.txt"
    );
}

#[test]
fn a_hub_answer_without_a_field_is_refused() {
    for body in [
        &b"not json"[..],
        br#"{"correlationId":"c","hostName":"h","containerName":"c","blobName":"b"}"#,
        br#"{"correlationId":"","hostName":"h","containerName":"c","blobName":"b","sasToken":"s"}"#,
        br#"{"correlationId":1,"hostName":"h","containerName":"c","blobName":"b","sasToken":"s"}"#,
    ] {
        assert!(
            matches!(
                SasUri::parse(body),
                Err(UploadError::InvalidHubResponse { .. })
            ),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn hub_paths_and_bodies_are_iot_hubs() {
    assert_eq!(files_path("dev1", None), "/devices/dev1/files");
    assert_eq!(
        files_path("dev 1", Some("mod/1")),
        "/devices/dev%201/modules/mod%2F1/files"
    );
    assert_eq!(
        sas_request_body("logs/a.txt"),
        serde_json::json!({"blobName": "logs/a.txt"})
    );
    assert_eq!(
        notification_body("corr", false, 403, "expired"),
        serde_json::json!({
            "correlationId": "corr",
            "isSuccess": false,
            "statusCode": 403,
            "statusDescription": "expired",
        })
    );
}

#[test]
fn blob_names_are_checked_before_the_hub_is_asked() {
    check_blob_name("a").unwrap();
    check_blob_name("dir/sub/file.bin").unwrap();
    check_blob_name(&"x".repeat(1024)).unwrap();
    for bad in ["", "a//b", "/a", "a/", "a\nb", &"x".repeat(1025)] {
        assert!(
            matches!(
                check_blob_name(bad),
                Err(Error::InvalidInput {
                    field: "blob_name",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn retry_policy_doubles_up_to_its_cap_and_stops_after_its_tries() {
    let policy = RetryPolicy::new(5, Duration::from_millis(100), Duration::from_millis(300));
    let delays: Vec<_> = (0..6).map(|r| policy.delay(r)).collect();
    assert_eq!(
        delays,
        [
            Some(Duration::from_millis(100)),
            Some(Duration::from_millis(200)),
            Some(Duration::from_millis(300)),
            Some(Duration::from_millis(300)),
            None,
            None,
        ]
    );
    assert_eq!(
        RetryPolicy::new(0, Duration::ZERO, Duration::ZERO).attempts(),
        1
    );
    assert_eq!(RetryPolicy::default().attempts(), 4);
    assert_eq!(RetryPolicy::none().delay(0), None);
}

#[test]
fn only_transient_statuses_are_retried() {
    for status in [408, 429, 500, 502, 503, 504] {
        assert!(status_is_retriable(status), "{status}");
    }
    for status in [400, 401, 403, 404, 409, 412, 413, 501] {
        assert!(!status_is_retriable(status), "{status}");
    }
}

#[test]
fn storage_error_code_comes_from_the_header_or_the_xml_body() {
    assert_eq!(
        storage_error_code(Some("AuthenticationFailed"), b"").as_deref(),
        Some("AuthenticationFailed")
    );
    let body = b"\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>InvalidBlockList</Code><Message>The specified block list is invalid.</Message></Error>";
    assert_eq!(
        storage_error_code(None, body).as_deref(),
        Some("InvalidBlockList")
    );
    assert_eq!(storage_error_code(Some(""), b"<Error>").as_deref(), None);
}
