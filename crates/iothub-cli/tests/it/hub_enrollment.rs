//! `iothub hub enrollment|enrollment-group` against an emulator data dir, checked end to end:
//! a DPS token minted with `iothub sas` for the printed id scope and key (or the key derived
//! with `iothub sas --derive-key`) authenticates with the emulator's DPS code on that database.

use std::time::{SystemTime, UNIX_EPOCH};

use iothub_emulator::hub::provisioning::{self, DpsAuthError};
use iothub_emulator::store::Store;
use serde_json::Value;

use crate::{Run, iothub};

/// docs/protocol.md §2.2 vector 7.
const GROUP_KEY: &str =
    "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==";
const MEMBER: &str = "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6";
const MEMBER_KEY: &str = "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=";
const KEY: &str = "cGFzc3dvcmRwYXNzd29yZHBhc3N3b3JkcGFzc3dvcmQ=";

fn hub(dir: &tempfile::TempDir, args: &[&str]) -> Run {
    let dir = dir.path().display().to_string();
    let mut all = vec!["--json", "hub", "--data-dir", dir.as_str()];
    all.extend_from_slice(args);
    iothub(&all)
}

fn json(run: &Run) -> Value {
    assert_eq!(run.code, Some(0), "{run:?}");
    serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {run:?}"))
}

/// `iothub sas` for `{scope}/registrations/{id}` with policy `registration`.
fn dps_token(scope: &str, id: &str, key: &str) -> String {
    let expiry = (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
        + 3600)
        .to_string();
    let resource = format!("{scope}/registrations/{id}");
    let run = iothub(&[
        "sas",
        "--resource",
        &resource,
        "--key",
        key,
        "--policy",
        "registration",
        "--expiry",
        &expiry,
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    run.stdout.trim().to_owned()
}

fn authenticate(
    dir: &tempfile::TempDir,
    scope: &str,
    id: &str,
    token: &str,
) -> Result<Option<String>, DpsAuthError> {
    let store = Store::open(&dir.path().join("hub.db")).expect("the data dir database opens");
    let (scope, id, token) = (scope.to_owned(), id.to_owned(), token.to_owned());
    store
        .call_blocking(move |tx| {
            Ok(provisioning::authenticate_registration(
                tx,
                &scope,
                &id,
                &token,
                SystemTime::now(),
            ))
        })
        .expect("the database answers")
        .map(|a| a.group_id)
}

#[test]
fn individual_enrollment_prints_scope_and_key_that_dps_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let created = json(&hub(&dir, &["enrollment", "create", "dev-1", "--key", KEY]));
    assert_eq!(created["registrationId"], "dev-1");
    assert_eq!(created["attestation"]["symmetricKey"]["primaryKey"], KEY);
    assert_eq!(created["provisioningStatus"], "enabled");
    let scope = created["idScope"].as_str().unwrap().to_owned();
    assert!(scope.starts_with("0ne") && scope.len() == 11, "{scope}");

    let token = dps_token(&scope, "dev-1", KEY);
    assert_eq!(authenticate(&dir, &scope, "dev-1", &token), Ok(None));

    // the scope is stable and shown again
    let shown = json(&hub(&dir, &["enrollment", "show", "dev-1"]));
    assert_eq!(shown["idScope"], scope.as_str());
    // a generated secondary key works too
    let secondary = shown["attestation"]["symmetricKey"]["secondaryKey"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        authenticate(
            &dir,
            &scope,
            "dev-1",
            &dps_token(&scope, "dev-1", &secondary)
        ),
        Ok(None)
    );
}

#[test]
fn group_members_authenticate_with_keys_derived_by_iothub_sas() {
    let dir = tempfile::tempdir().unwrap();
    let created = json(&hub(
        &dir,
        &["enrollment-group", "create", "fleet", "--key", GROUP_KEY],
    ));
    assert_eq!(created["enrollmentGroupId"], "fleet");
    let scope = created["idScope"].as_str().unwrap().to_owned();
    let derived = iothub(&[
        "sas",
        "--derive-key",
        "--group-key",
        GROUP_KEY,
        "--registration-id",
        MEMBER,
    ]);
    assert_eq!(derived.stdout.trim(), MEMBER_KEY);
    let token = dps_token(&scope, MEMBER, MEMBER_KEY);
    assert_eq!(
        authenticate(&dir, &scope, MEMBER, &token),
        Ok(Some("fleet".into()))
    );
    // the group key itself is not a member key
    let token = dps_token(&scope, MEMBER, GROUP_KEY);
    assert_eq!(
        authenticate(&dir, &scope, MEMBER, &token),
        Err(DpsAuthError::UnknownRegistration)
    );
}

#[test]
fn list_disable_enable_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    json(&hub(&dir, &["enrollment", "create", "b-dev"]));
    json(&hub(&dir, &["enrollment", "create", "a-dev", "--disabled"]));
    let list = json(&hub(&dir, &["enrollment", "list"]));
    let ids: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["registrationId"].as_str().unwrap(),
                e["provisioningStatus"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(ids, [("a-dev", "disabled"), ("b-dev", "enabled")]);
    assert_eq!(hub(&dir, &["enrollment", "enable", "a-dev"]).code, Some(0));
    assert_eq!(
        json(&hub(&dir, &["enrollment", "show", "a-dev"]))["provisioningStatus"],
        "enabled"
    );
    assert_eq!(hub(&dir, &["enrollment", "disable", "b-dev"]).code, Some(0));
    assert_eq!(
        json(&hub(&dir, &["enrollment", "show", "b-dev"]))["provisioningStatus"],
        "disabled"
    );
    // groups are a separate namespace
    assert_eq!(
        json(&hub(&dir, &["enrollment-group", "list"])),
        Value::Array(Vec::new())
    );
    assert_eq!(hub(&dir, &["enrollment", "delete", "a-dev"]).code, Some(0));
    let again = hub(&dir, &["enrollment", "delete", "a-dev"]);
    assert_eq!(again.code, Some(1), "{again:?}");
    assert!(again.stderr.contains("not found"), "{again:?}");
    assert_eq!(hub(&dir, &["enrollment", "show", "a-dev"]).code, Some(1));
}

#[test]
fn bad_requests_exit_2_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    json(&hub(&dir, &["enrollment", "create", "dev-1"]));
    let cases = [
        (vec!["enrollment", "create", "DEV-1"], "already exists"),
        (vec!["enrollment", "create", "trailing-"], "invalid id"),
        (
            vec!["enrollment", "create", "dev-2", "--key", "c2hvcnQ="],
            "invalid key",
        ),
        (
            vec!["enrollment-group", "create", "g", "--key", "not base64"],
            "invalid key",
        ),
    ];
    for (args, reason) in cases {
        let run = hub(&dir, &args);
        assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
        assert!(run.stderr.contains(reason), "{args:?}: {run:?}");
    }
}

#[test]
fn plain_output_names_the_scope_host_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let run = iothub(&[
        "hub",
        "--data-dir",
        &d,
        "enrollment",
        "create",
        "dev-1",
        "--key",
        KEY,
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("idScope: 0ne"), "{run:?}");
    assert!(lines.contains(&"provisioningHost: localhost"), "{run:?}");
    assert!(lines.contains(&"registrationId: dev-1"), "{run:?}");
    assert!(
        lines.contains(&format!("primaryKey: {KEY}").as_str()),
        "{run:?}"
    );
}
