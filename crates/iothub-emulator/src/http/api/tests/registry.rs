//! Registry, query and authorisation over HTTP.

use serde_json::json;

use super::*;
// ---- registry ---------------------------------------------------------------------------

#[tokio::test]
async fn creates_reads_lists_and_deletes_a_device() {
    let api = setup().await;
    let created = api.create("dev1").await;
    assert_eq!(created["deviceId"], "dev1");
    assert_eq!(created["status"], "enabled");
    assert_eq!(created["connectionState"], "Disconnected");
    assert_eq!(created["cloudToDeviceMessageCount"], 0);
    assert_eq!(created["authentication"]["type"], "sas");
    assert_eq!(
        created["authentication"]["symmetricKey"]["primaryKey"]
            .as_str()
            .unwrap()
            .len(),
        44
    );

    let got = api.call("GET", "/devices/dev1", None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["etag"], created["etag"]);
    let list = api.call("GET", "/devices", None).await.json();
    assert_eq!(list.as_array().unwrap().len(), 1);

    let deleted = api.call("DELETE", "/devices/dev1", None).await;
    assert_eq!(deleted.status, 204);
    let gone = api.call("GET", "/devices/dev1", None).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.error()["errorCode"], 404_001);
    assert_eq!(gone.header("iothub-errorcode"), Some("DeviceNotFound"));
}

#[tokio::test]
async fn put_without_if_match_on_an_existing_device_is_a_conflict() {
    let api = setup().await;
    api.create("dev1").await;
    let again = api
        .call("PUT", "/devices/dev1", Some(json!({"deviceId": "dev1"})))
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(again.error()["errorCode"], 409_001);
}

#[tokio::test]
async fn updates_need_a_current_etag_and_disabling_closes_the_connection() {
    let api = setup().await;
    let created = api.create("dev1").await;
    let etag = created["etag"].as_str().unwrap().to_owned();
    let (_, mut rx) = api.connect(&dev("dev1"), Interests::C2D);
    let body = json!({"deviceId": "dev1", "status": "disabled",
        "authentication": {"type": "sas", "symmetricKey": {"primaryKey": "a2V5MQ==", "secondaryKey": "a2V5Mg=="}}}).to_string();
    let quoted = format!("\"{etag}\"");
    let stale = api
        .call_with(
            "PUT",
            "/devices/dev1",
            Some(&api.owner),
            &[("If-Match", "\"AAAAAAAAAAA=\"")],
            Some(body.clone().into_bytes()),
        )
        .await;
    assert_eq!(stale.status, 412);
    let ok = api
        .call_with(
            "PUT",
            "/devices/dev1",
            Some(&api.owner),
            &[("If-Match", &quoted)],
            Some(body.into_bytes()),
        )
        .await;
    assert_eq!(ok.status, 200);
    let updated = ok.json();
    assert_eq!(updated["status"], "disabled");
    assert_eq!(
        updated["authentication"]["symmetricKey"]["primaryKey"],
        "a2V5MQ=="
    );
    assert_eq!(updated["generationId"], created["generationId"]);
    assert_ne!(updated["etag"], created["etag"]);
    assert_eq!(
        rx.recv().await,
        Some(ToDevice::Close(crate::hub::CloseReason::IdentityChanged))
    );
}

#[tokio::test]
async fn malformed_bodies_are_400_and_create_nothing() {
    let api = setup().await;
    for body in [
        &b"{not json"[..],
        b"[1,2]",
        br#"{"deviceId":"other"}"#,
        br#"{"status":"sleepy"}"#,
    ] {
        let r = api
            .call_with(
                "PUT",
                "/devices/dev1",
                Some(&api.owner),
                &[],
                Some(body.to_vec()),
            )
            .await;
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(body));
        assert_eq!(r.error()["errorCode"], 400_004);
    }
    assert_eq!(api.call("GET", "/devices/dev1", None).await.status, 404);
}

#[tokio::test]
async fn modules_live_under_their_device_and_go_with_it() {
    let api = setup().await;
    let orphan = api
        .call("PUT", "/devices/nodev/modules/m1", Some(json!({})))
        .await;
    assert_eq!(orphan.status, 404);
    api.create("dev1").await;
    let m = api
        .call(
            "PUT",
            "/devices/dev1/modules/m1",
            Some(json!({"moduleId": "m1"})),
        )
        .await;
    assert_eq!(m.status, 200);
    assert_eq!(m.json()["moduleId"], "m1");
    assert_eq!(
        api.call("GET", "/devices/dev1/modules/m1", None)
            .await
            .json()["deviceId"],
        "dev1"
    );
    assert_eq!(
        api.call("GET", "/devices/dev1/modules", None)
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        api.call("GET", "/twins/dev1/modules/m1", None).await.json()["moduleId"],
        "m1"
    );
    assert_eq!(api.call("DELETE", "/devices/dev1", None).await.status, 204);
    let gone = api.call("GET", "/devices/dev1/modules/m1", None).await;
    assert_eq!(
        (gone.status, gone.error()["errorCode"].as_u64()),
        (404, Some(404_010))
    );
}

#[tokio::test]
async fn query_filters_twins_by_device_id_status_and_tags() {
    let api = setup().await;
    for id in ["a", "b", "c"] {
        api.create(id).await;
    }
    api.call("PUT", "/devices/b", None).await; // no body: 400, nothing changes
    let etag = api.call("GET", "/devices/c", None).await.json()["etag"]
        .as_str()
        .unwrap()
        .to_owned();
    let disable = json!({"status": "disabled"}).to_string().into_bytes();
    api.call_with(
        "PUT",
        "/devices/c",
        Some(&api.owner),
        &[("If-Match", &etag)],
        Some(disable),
    )
    .await;
    api.call("PATCH", "/twins/a", Some(json!({"tags": {"site": "lab"}})))
        .await;

    let q = |text: &str| json!({ "query": text });
    let all = api
        .call("POST", "/devices/query", Some(q("SELECT * FROM devices")))
        .await;
    assert_eq!(all.status, 200);
    assert_eq!(all.header("x-ms-item-type"), Some("Twin"));
    assert_eq!(all.json().as_array().unwrap().len(), 3);
    let by_id = api
        .call(
            "POST",
            "/devices/query",
            Some(q("SELECT * FROM devices WHERE deviceId = 'b'")),
        )
        .await
        .json();
    assert_eq!(
        by_id
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["deviceId"].clone())
            .collect::<Vec<_>>(),
        vec![json!("b")]
    );
    let disabled = api
        .call(
            "POST",
            "/devices/query",
            Some(q("SELECT * FROM devices WHERE status = 'disabled'")),
        )
        .await
        .json();
    assert_eq!(disabled[0]["deviceId"], "c");
    assert_eq!(disabled.as_array().unwrap().len(), 1);
    let tagged = api
        .call(
            "POST",
            "/devices/query",
            Some(q("SELECT * FROM devices WHERE tags.site = 'lab'")),
        )
        .await
        .json();
    assert_eq!(tagged[0]["deviceId"], "a");
    let page = api
        .call_with(
            "POST",
            "/devices/query",
            Some(&api.owner),
            &[("x-ms-max-item-count", "2")],
            Some(q("SELECT * FROM devices").to_string().into_bytes()),
        )
        .await;
    assert_eq!(page.json().as_array().unwrap().len(), 2);
    assert_eq!(page.header("x-ms-continuation"), Some("2"));
    let bad = api
        .call("POST", "/devices/query", Some(q("DROP TABLE devices")))
        .await;
    assert_eq!(bad.status, 400);
}

// ---- auth -------------------------------------------------------------------------------

#[tokio::test]
async fn requests_without_a_valid_service_token_are_401() {
    let api = setup().await;
    let none = api.call_with("GET", "/devices", None, &[], None).await;
    assert_eq!(
        (none.status, none.error()["errorCode"].as_u64()),
        (401, Some(401_002))
    );
    let expired = token(&api.hub, "iothubowner", "localhost", -3600).await;
    assert_eq!(
        api.call_with("GET", "/devices", Some(&expired), &[], None)
            .await
            .status,
        401
    );
    let other_hub = token(&api.hub, "iothubowner", "elsewhere.azure-devices.net", 3600).await;
    assert_eq!(
        api.call_with("GET", "/devices", Some(&other_hub), &[], None)
            .await
            .status,
        401
    );
    let forged = api.owner.replace("sig=", "sig=x");
    assert_eq!(
        api.call_with("GET", "/devices", Some(&forged), &[], None)
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn tokens_for_any_hub_name_with_or_without_port_are_accepted() {
    let api = setup().await;
    for resource in [
        "localhost:8443",
        "myhub.azure-devices.net",
        "MyHub.azure-devices.net/devices",
    ] {
        let t = token(&api.hub, "iothubowner", resource, 3600).await;
        assert_eq!(
            api.call_with("GET", "/devices", Some(&t), &[], None)
                .await
                .status,
            200,
            "{resource}"
        );
    }
}

#[tokio::test]
async fn each_policy_gets_exactly_its_rights() {
    let api = setup().await;
    api.create("dev1").await;
    let read = ("GET", "/devices/dev1", None);
    let write = ("PUT", "/devices/dev2", Some(json!({})));
    let service = ("GET", "/twins/dev1", None);
    // (policy, read, write, service)
    let table = [
        ("iothubowner", true, true, true),
        ("service", false, false, true),
        ("registryRead", true, false, false),
        ("registryReadWrite", true, true, false),
        ("device", false, false, false),
    ];
    for (policy, can_read, can_write, can_service) in table {
        let t = token(&api.hub, policy, "localhost", 3600).await;
        for ((method, path, body), allowed) in [
            (read.clone(), can_read),
            (write.clone(), can_write),
            (service.clone(), can_service),
        ] {
            let r = api
                .call_with(
                    method,
                    path,
                    Some(&t),
                    &[],
                    body.map(|b| b.to_string().into_bytes()),
                )
                .await;
            assert_eq!(
                r.status != 401,
                allowed,
                "{policy} {method} {path}: {}",
                r.status
            );
        }
        if can_write {
            api.call("DELETE", "/devices/dev2", None).await;
        }
    }
}
