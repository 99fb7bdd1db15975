//! Finding: a 10 MB body got a plain-text 413, `%ff` in an id a plain-text 400, an unknown
//! route a 404 labelled `ServerError`. Every error now has the hubs' JSON shape and a
//! matching `iothub-errorcode` header.

use iothub_emulator::testing::TestHub;

use crate::http::{Reply, owner_token, send};

fn assert_shape(r: &Reply, status: u16, code: u64, name: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.header("iothub-errorcode"), Some(name), "{}", r.headers);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{}",
        r.headers
    );
    assert_eq!(r.hub_error()["errorCode"], code, "{}", r.body);
}

#[tokio::test]
async fn framework_errors_use_the_hub_error_shape_on_both_listeners() {
    let hub = TestHub::spawn().await.unwrap();
    let token = owner_token(&hub, "localhost");
    let http = hub.emulator.http_addr.unwrap();

    let huge = vec![b' '; 10 << 20];
    let r = send(http, "PUT", "/devices/big", &token, &huge).await;
    assert_shape(&r, 413, 413_000, "GenericRequestEntityTooLarge");

    let r = send(http, "GET", "/devices/%ff", &token, b"").await;
    assert_shape(&r, 400, 400_004, "ArgumentInvalid");

    let r = send(http, "GET", "/no/such/route", &token, b"").await;
    assert_shape(&r, 404, 404_000, "GenericNotFound");

    let r = send(http, "PATCH", "/devices", &token, b"").await;
    assert_shape(&r, 405, 405_000, "GenericMethodNotAllowed");

    // Errors the handlers produce keep their specific codes.
    let r = send(http, "GET", "/devices/nobody", &token, b"").await;
    assert_shape(&r, 404, 404_001, "DeviceNotFound");
    let r = send(
        http,
        "GET",
        "/devices",
        "SharedAccessSignature sr=x&sig=y&se=1",
        b"",
    )
    .await;
    assert_shape(&r, 401, 401_002, "IotHubUnauthorizedAccess");
    hub.shutdown().await;
}
