//! What the AMQP surface refuses, and that a refusal touches nothing else (docs/amqp.md):
//! bad tokens at `$cbs`, links to what does not exist or is not authorised, malformed
//! filters, and garbage on the wire — each answered with a clear error while the other links
//! of the connection, and other clients, keep working.

use std::time::Duration;

use fe2o3_amqp::types::definitions::{AmqpError, ErrorCondition};
use fe2o3_amqp::types::primitives::Symbol;
use iothub_emulator::testing::TestHub;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::amqp_support::*;
use crate::support::{device_token, now};

#[tokio::test]
async fn bad_tokens_are_refused_at_cbs_with_the_reason() {
    let hub = TestHub::spawn().await.unwrap();
    let cs = hub.create_device("neg-dev").await.unwrap();
    let mut client = Client::connect(&hub).await;
    let eh = eventhub_uri(&hub);
    let key = owner_key(&hub);
    let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let (status, why) = client
        .put_token(&eh, &service_token(&eh, "iothubowner", wrong, now() + 3600))
        .await;
    assert_eq!(status, 401);
    assert!(why.contains("signature"), "{why}");
    assert!(!why.contains(wrong), "never echo a key");
    let (status, why) = client
        .put_token(&eh, &service_token(&eh, "iothubowner", &key, now() - 3600))
        .await;
    assert_eq!(status, 401);
    assert!(why.contains("expired"), "{why}");
    // A device token has no policy: not a service credential.
    let device = device_token(
        "localhost",
        "neg-dev",
        &crate::support::key_of(&cs),
        now() + 3600,
    );
    let (status, why) = client.put_token("localhost", &device).await;
    assert_eq!(status, 401, "{why}");
    // A policy without ServiceConnect.
    let registry_read = hub
        .emulator
        .hub
        .store()
        .call(|tx| iothub_emulator::store::registry::policy(tx, "registryRead"))
        .await
        .unwrap()
        .unwrap();
    let (status, why) = client
        .put_token(
            "localhost",
            &service_token(
                "localhost",
                "registryRead",
                &registry_read.primary_key,
                now() + 3600,
            ),
        )
        .await;
    assert_eq!(status, 401);
    assert!(why.contains("ServiceConnect"), "{why}");
    // Nothing was kept: a receiver is refused as unauthorised.
    let address = format!(
        "{}/ConsumerGroups/$Default/Partitions/0",
        hub.emulator.event_hub.name
    );
    let mut rx = client.receiver(&address, None, None, &[]).await;
    assert_eq!(
        refusal(&mut rx).await.condition,
        AmqpError::UnauthorizedAccess.into()
    );
}

#[tokio::test]
async fn refused_links_leave_the_good_one_on_the_same_connection_working() {
    let hub = TestHub::spawn().await.unwrap();
    let cs = hub.create_device("neg-dev2").await.unwrap();
    let mut client = Client::authorized(&hub).await;
    let eh = hub.emulator.event_hub.name.clone();
    let p = hub.emulator.hub.partition_of("neg-dev2");
    let good = format!("{eh}/ConsumerGroups/$Default/Partitions/{p}");
    let mut ok = client.receiver(&good, None, None, &[]).await;
    let cases: [(String, Option<&str>, ErrorCondition); 5] = [
        (
            "nosuchhub/ConsumerGroups/$Default/Partitions/0".to_string(),
            None,
            AmqpError::NotFound.into(),
        ),
        (
            format!("{eh}/ConsumerGroups/nosuchgroup/Partitions/0"),
            None,
            AmqpError::NotFound.into(),
        ),
        (
            format!("{eh}/ConsumerGroups/$Default/Partitions/99"),
            None,
            AmqpError::NotFound.into(),
        ),
        (
            good.clone(),
            Some("amqp.annotation.x-opt-offset ~ 'nonsense'"),
            ErrorCondition::Custom(Symbol::from("com.microsoft:argument-error")),
        ),
        ("no/such/node".to_string(), None, AmqpError::NotFound.into()),
    ];
    for (address, filter, condition) in cases {
        let mut rx = client.receiver(&address, filter, None, &[]).await;
        let error = refusal(&mut rx).await;
        assert_eq!(error.condition, condition, "{address}");
        assert!(
            error.description.is_some_and(|d| !d.is_empty()),
            "{address}"
        );
    }
    device_sends(&hub, "neg-dev2", &cs, &["still here"]).await;
    assert_eq!(body_bytes(&next_event(&mut ok).await), b"still here");
}

#[tokio::test]
async fn garbage_truncated_and_oversized_frames_do_not_stop_the_emulator() {
    let hub = TestHub::spawn().await.unwrap();
    let addr = hub.emulator.amqp_plain_addr.unwrap();
    let inputs: [Vec<u8>; 4] = [
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        // A SASL header, then a frame claiming 4 GiB.
        [
            b"AMQP\x03\x01\x00\x00".as_slice(),
            &[0xff, 0xff, 0xff, 0xff, 2, 1, 0, 0],
        ]
        .concat(),
        // An AMQP header, then half a frame and silence.
        [
            b"AMQP\x00\x01\x00\x00".as_slice(),
            &[0, 0, 0, 64, 2, 0, 0, 0, 0x00, 0x53],
        ]
        .concat(),
        (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect(),
    ];
    for bytes in inputs {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(&bytes).await;
        let mut sink = [0u8; 1024];
        // The emulator answers or closes; either way it must not hang the test or die.
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut sink)).await;
    }
    // Other clients are served as before.
    let mut client = Client::authorized(&hub).await;
    let address = format!(
        "{}/ConsumerGroups/$Default/Partitions/0",
        hub.emulator.event_hub.name
    );
    let _rx = client.receiver(&address, None, None, &[]).await;
    let cs = hub.create_device("after-garbage").await.unwrap();
    device_sends(&hub, "after-garbage", &cs, &["ok"]).await;
}
