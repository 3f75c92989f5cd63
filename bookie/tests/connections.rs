//! Connections to bookies: a client's queue is bounded, so a bookie that stops reading slows its
//! callers down.

mod common;

use std::sync::Arc;
use std::time::Duration;

use magnetar_bookie::client::{BookieClient, ConnectOptions};
use magnetar_protocol::bookie::AddEntryRequest;
use magnetar_testkit::wait_until;

/// Steps:
/// 1. A peer accepts a connection and never reads from it; a client connects with a 1 MiB queue.
/// 2. 400 adds of 60 KiB (24 MB) are called at once.
/// 3. Once the socket's buffers are full, the queue fills up to its bound and no further; the
///    other calls wait for room (backpressure) instead of queuing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_fills_the_queue_only_to_its_bound() {
    const BOUND: usize = 1024 * 1024;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let peer = tokio::spawn(async move { listener.accept().await.map(|(socket, _)| socket) });
    let options = ConnectOptions {
        max_queued_bytes: BOUND,
        write_timeout: Duration::from_secs(120),
        ..ConnectOptions::default()
    };
    let client = Arc::new(
        BookieClient::connect_with(addr, &options)
            .await
            .expect("connect"),
    );
    let _socket = peer.await.expect("accept task").expect("accepted");
    let calls: Vec<_> = (0..400u64)
        .map(|entry_id| {
            let client = client.clone();
            tokio::spawn(async move {
                let add = AddEntryRequest {
                    ledger_id: 1,
                    entry_id,
                    last_add_confirmed: None,
                    payload: vec![7; 60 * 1024],
                    recovery: false,
                };
                client.add_entry(add).await
            })
        })
        .collect();
    wait_until("the queue to fill up", Duration::from_secs(20), || {
        let queued = client.queued_bytes();
        assert!(queued <= BOUND, "{queued} bytes queued, over the bound");
        async move { queued > BOUND - 100 * 1024 }
    })
    .await;
    assert!(client.queued_bytes() <= BOUND);
    assert!(calls.iter().all(|call| !call.is_finished()));
    for call in calls {
        call.abort();
    }
}
