//! Bad input gets clear errors and never a panic or a dead node:
//! oversized values, invalid keys, garbage bytes on the wire, unknown member ids.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use magnetar_metadata::testing::{ClusterOptions, LocalCluster};
use magnetar_metadata::{Expected, MetadataError};
use magnetar_protocol::metadata::{ErrorCode, Response};
use prost::Message;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors() {
    let cluster = LocalCluster::start(1, ClusterOptions::default())
        .await
        .expect("cluster");
    let client = cluster.client();

    let big = vec![0u8; magnetar_metadata::keys::MAX_VALUE_SIZE + 1];
    assert!(matches!(
        client.put("/big", big, Expected::Any).await,
        Err(MetadataError::TooLarge(_))
    ));
    for key in ["", "no-slash", "/trailing/", "/a//b"] {
        assert!(
            matches!(
                client.put(key, "v", Expected::Any).await,
                Err(MetadataError::InvalidArgument(_))
            ),
            "{key:?}"
        );
    }
    assert!(matches!(
        client.add_member(0, "x:1").await,
        Err(MetadataError::InvalidArgument(_))
    ));
    let err = client.remove_member(42).await.expect_err("unknown member");
    assert!(matches!(err, MetadataError::InvalidArgument(_)), "{err:?}");

    // Garbage inside a well-delimited frame: an error response, and the connection still works.
    let stream = TcpStream::connect(cluster.addr(0)).await.expect("connect");
    let mut framed = Framed::new(stream, LengthDelimitedCodec::new());
    framed
        .send(Bytes::from_static(b"\xff\xff\xff\xff garbage"))
        .await
        .expect("send");
    let reply = tokio::time::timeout(Duration::from_secs(10), framed.next())
        .await
        .expect("reply")
        .expect("frame")
        .expect("ok");
    let response = Response::decode(reply).expect("a response");
    assert_eq!(
        response.error.expect("error").code,
        ErrorCode::InvalidArgument as i32
    );

    // An absurd frame length closes that connection only.
    let mut raw = TcpStream::connect(cluster.addr(0)).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut raw, &[0xff, 0xff, 0xff, 0xff, 1, 2, 3])
        .await
        .expect("write");
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read(&mut raw, &mut buf),
    )
    .await
    .expect("closed in time")
    .unwrap_or(0);
    assert_eq!(n, 0, "connection closed");

    client
        .put("/still/serving", "yes", Expected::Any)
        .await
        .expect("node keeps serving");
    cluster.shutdown().await;
}
