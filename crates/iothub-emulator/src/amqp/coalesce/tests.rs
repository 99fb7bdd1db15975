use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

use super::*;

#[tokio::test]
async fn many_writes_arrive_whole_and_in_order_and_shutdown_sends_them_all_first() {
    let (ours, mut theirs) = duplex(64 * 1024);
    let mut t = Coalesced::spawn(ours);
    let mut sent = Vec::new();
    for i in 0..2000u32 {
        let frame = i.to_be_bytes().repeat(1 + i as usize % 7);
        t.write_all(&frame).await.unwrap();
        t.flush().await.unwrap();
        sent.extend_from_slice(&frame);
    }
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).await.unwrap();
        got
    });
    t.shutdown().await.unwrap();
    assert_eq!(reader.await.unwrap(), sent);
}

#[tokio::test]
async fn reads_pass_through() {
    let (ours, mut theirs) = duplex(1024);
    let mut t = Coalesced::spawn(ours);
    theirs.write_all(b"AMQP\x00\x01\x00\x00").await.unwrap();
    let mut header = [0; 8];
    t.read_exact(&mut header).await.unwrap();
    assert_eq!(&header, b"AMQP\x00\x01\x00\x00");
}

#[tokio::test]
async fn a_writer_waits_for_room_while_the_peer_does_not_read() {
    let (ours, mut theirs) = duplex(1024);
    let mut t = Coalesced::spawn(ours);
    let chunk = vec![7u8; 16 * 1024];
    // The peer reads nothing: what is handed over stops at the high-water mark.
    let mut handed = 0;
    while tokio::time::timeout(Duration::from_millis(200), t.write_all(&chunk))
        .await
        .is_ok()
    {
        handed += chunk.len();
        // What is pending, what the task is writing, and the pipe's own buffer.
        assert!(
            handed <= 2 * (HIGH_WATER + chunk.len()) + 1024,
            "no back-pressure"
        );
    }
    assert!(handed >= HIGH_WATER);
    // Reading makes room again, and every byte handed over arrives.
    let reader = tokio::spawn(async move {
        let mut n = 0;
        let mut buf = vec![0; 8192];
        loop {
            match theirs.read(&mut buf).await.unwrap() {
                0 => return n,
                k => n += k,
            }
        }
    });
    t.write_all(&chunk).await.unwrap();
    t.shutdown().await.unwrap();
    let total = reader.await.unwrap();
    assert!(
        total >= handed + chunk.len(),
        "{total} < {}",
        handed + chunk.len()
    );
}

#[tokio::test]
async fn writes_fail_once_the_peer_is_gone() {
    let (ours, theirs) = duplex(1024);
    let mut t = Coalesced::spawn(ours);
    drop(theirs);
    let mut failed = false;
    for _ in 0..100 {
        if t.write_all(b"frame").await.is_err() || t.flush().await.is_err() {
            failed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(failed, "a write to a closed peer never failed");
    assert!(t.shutdown().await.is_err() || lock(&t.shared.state).failed.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_dropped_transport_stops_its_task_even_when_the_peer_never_reads() {
    let (ours, theirs) = duplex(16);
    let mut t = Coalesced::spawn(ours);
    t.write_all(&[1; 4096]).await.unwrap();
    let shared = t.shared.clone();
    drop(t);
    // The task holds the write half until DRAIN_AFTER_DROP has passed, then gives up.
    tokio::time::sleep(DRAIN_AFTER_DROP + Duration::from_secs(1)).await;
    assert!(lock(&shared.state).finished);
    drop(theirs);
}
