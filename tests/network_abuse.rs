//! Network-level abuse of a running `magnetar standalone` process: random bytes, mutated valid
//! frames, a valid conversation split at every byte boundary, every command before CONNECT,
//! commands on ids that do not exist, and 10,000 idle sockets. After each phase the broker is up
//! and a well-behaved client still publishes and consumes; the process's memory stays under its
//! budget throughout. Figures (RSS per phase) are printed.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use bytes::BytesMut;
use magnetar_protocol::pulsar::base_command::Type;
use magnetar_protocol::pulsar::*;
use magnetar_protocol::{Frame, Payload, PulsarCodec};
use magnetar_testkit::raw::RawClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_util::codec::Encoder;

/// The standalone's resident memory must stay under this (it idles at about 30 MB).
const MEMORY_BUDGET_BYTES: u64 = 768 * 1024 * 1024;
const IDLE_SOCKETS: usize = 10_000;

struct Server {
    child: Child,
    pulsar: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn start() -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let [pulsar, http, metadata, bookie] = [free_port(), free_port(), free_port(), free_port()];
    let child = Command::new(env!("CARGO_BIN_EXE_magnetar"))
        .arg("standalone")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--broker-addr", &format!("127.0.0.1:{pulsar}")])
        .args(["--http-addr", &format!("127.0.0.1:{http}")])
        .args(["--metadata-addr", &format!("127.0.0.1:{metadata}")])
        .args(["--bookie-addr", &format!("127.0.0.1:{bookie}")])
        .args(["--replication-addr", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("standalone.log")).expect("log"))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn magnetar standalone");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{pulsar}").parse().expect("addr");
    magnetar_testkit::wait_until("the standalone serves", Duration::from_secs(60), || async {
        TcpStream::connect(addr).await.is_ok()
    })
    .await;
    Server {
        child,
        pulsar: addr,
        _dir: dir,
    }
}

impl Server {
    fn rss(&self) -> u64 {
        let pid = self.child.id().expect("running");
        let status =
            std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status"))
                .expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The broker is up, a client publishes and consumes, and memory is within budget.
    async fn healthy(&mut self, phase: &str) {
        assert!(self.alive(), "the standalone died during {phase}");
        let topic = format!(
            "persistent://public/default/healthy-{}",
            phase.replace(' ', "-")
        );
        let mut client = RawClient::connect(self.pulsar, None)
            .await
            .expect_connected();
        let name = client.producer(&topic, 1).await.expect("producer");
        client.publish(1, &name, phase.as_bytes()).await;
        let mut consumer = RawClient::connect(self.pulsar, None)
            .await
            .expect_connected();
        consumer
            .subscribe(&topic, "sub", 1, 10)
            .await
            .expect("subscribe");
        assert_eq!(consumer.receive().await, phase.as_bytes());
        let rss = self.rss();
        println!("after {phase}: RSS {} MiB", rss / (1024 * 1024));
        assert!(rss < MEMORY_BUDGET_BYTES, "RSS {rss} after {phase}");
    }
}

fn encode(frames: &[Frame]) -> Vec<u8> {
    let mut codec = PulsarCodec::default();
    let mut buf = BytesMut::new();
    for frame in frames {
        codec.encode(frame.clone(), &mut buf).expect("encode");
    }
    buf.to_vec()
}

/// One SEND of `body` for producer 1.
fn send(producer_name: &str, body: &[u8]) -> Frame {
    let metadata = MessageMetadata {
        producer_name: producer_name.into(),
        sequence_id: 0,
        publish_time: 1,
        ..Default::default()
    };
    Frame::with_payload(
        CommandSend {
            producer_id: 1,
            sequence_id: 0,
            num_messages: Some(1),
            ..Default::default()
        },
        Payload::new(&metadata, body),
    )
}

/// CONNECT, PRODUCER, SUBSCRIBE (to `subscription`, from the earliest message): the opening of
/// a conversation; SEND and FLOW follow once the broker confirmed, as clients do.
fn conversation(topic: &str, subscription: &str) -> Vec<Frame> {
    vec![
        CommandConnect {
            client_version: "abuse".into(),
            protocol_version: Some(20),
            ..Default::default()
        }
        .into(),
        CommandProducer {
            topic: topic.into(),
            producer_id: 1,
            request_id: 1,
            ..Default::default()
        }
        .into(),
        CommandSubscribe {
            topic: topic.into(),
            subscription: subscription.into(),
            consumer_id: 1,
            request_id: 2,
            initial_position: Some(1),
            ..Default::default()
        }
        .into(),
    ]
}

/// Sends `bytes` on a fresh connection and reads whatever comes back until the broker closes
/// or a short while passes; never fails (the broker's side is what is judged).
async fn throw(addr: std::net::SocketAddr, bytes: &[u8]) {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return;
    };
    let _ = stream.write_all(bytes).await;
    let mut buf = vec![0u8; 64 * 1024];
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// [`throw`]s every input, 50 connections at a time.
async fn throw_all(addr: std::net::SocketAddr, inputs: Vec<Vec<u8>>) {
    for chunk in inputs.chunks(50) {
        futures::future::join_all(chunk.iter().map(|bytes| throw(addr, bytes))).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_broker_survives_abuse_and_keeps_serving() {
    let mut server = start().await;
    let addr = server.pulsar;
    let mut rng = StdRng::seed_from_u64(0x5eed);
    server.healthy("start").await;

    // Random bytes, with and without a plausible length prefix.
    let random: Vec<Vec<u8>> = (0..500)
        .map(|_| {
            let len = rng.random_range(0..2048);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if rng.random_bool(0.5) && bytes.len() >= 8 {
                let total = (bytes.len() - 4) as u32;
                bytes[..4].copy_from_slice(&total.to_be_bytes());
            }
            bytes
        })
        .collect();
    throw_all(addr, random).await;
    server.healthy("random bytes").await;

    // Valid frames with random bytes flipped, cut short or repeated.
    let valid = encode(&conversation("persistent://public/default/mutated", "s"));
    let mutated: Vec<Vec<u8>> = (0..1000)
        .map(|_| {
            let mut bytes = valid.clone();
            for _ in 0..rng.random_range(1..8) {
                let at = rng.random_range(0..bytes.len());
                bytes[at] = rng.random();
            }
            if rng.random_bool(0.3) {
                bytes.truncate(rng.random_range(0..bytes.len()));
            }
            bytes
        })
        .collect();
    throw_all(addr, mutated).await;
    server.healthy("mutated frames").await;

    // One conversation split at every byte boundary: the broker answers each the same way.
    for at in 1..encode(&conversation("persistent://public/default/split", "s0")).len() {
        let stream = encode(&conversation(
            "persistent://public/default/split",
            &format!("s{at}"),
        ));
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        conn.write_all(&stream[..at]).await.expect("first part");
        conn.flush().await.expect("flush");
        tokio::task::yield_now().await;
        conn.write_all(&stream[at..]).await.expect("second part");
        let mut framed = tokio_util::codec::Framed::new(conn, PulsarCodec::default());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let frame = tokio::time::timeout_at(deadline, futures::StreamExt::next(&mut framed))
                .await
                .unwrap_or_else(|_| panic!("no MESSAGE with the stream split at byte {at}"))
                .expect("open")
                .expect("frame");
            match frame.command.kind() {
                Some(Type::ProducerSuccess) => {
                    let name = frame
                        .command
                        .producer_success
                        .expect("success")
                        .producer_name;
                    futures::SinkExt::send(&mut framed, send(&name, b"split"))
                        .await
                        .expect("send");
                }
                Some(Type::Success) => {
                    let flow = Frame::from(CommandFlow {
                        consumer_id: 1,
                        message_permits: 10,
                    });
                    futures::SinkExt::send(&mut framed, flow)
                        .await
                        .expect("flow");
                }
                Some(Type::Message) => break,
                Some(Type::Error) => panic!("split at byte {at}: {:?}", frame.command.error),
                _ => {}
            }
        }
    }
    server.healthy("split frames").await;

    // Every command type before CONNECT: the connection is closed, nothing else happens.
    let early: Vec<Vec<u8>> = (0..=100)
        .filter_map(|value| Type::try_from(value).ok())
        .filter(|kind| *kind != Type::Connect)
        .map(|kind| {
            encode(&[Frame::from(BaseCommand {
                r#type: kind as i32,
                ..Default::default()
            })])
        })
        .collect();
    throw_all(addr, early).await;
    server.healthy("commands before connect").await;

    // Commands on producer and consumer ids that do not exist.
    let mut client = RawClient::connect(addr, None).await.expect_connected();
    for id in 0..200u64 {
        client
            .send(CommandFlow {
                consumer_id: id,
                message_permits: u32::MAX,
            })
            .await;
        client
            .send(CommandAck {
                consumer_id: id,
                message_id: vec![MessageIdData {
                    ledger_id: id,
                    entry_id: id,
                    ack_set: vec![-1; 64],
                    ..Default::default()
                }],
                ..Default::default()
            })
            .await;
        client
            .send(CommandRedeliverUnacknowledgedMessages {
                consumer_id: id,
                ..Default::default()
            })
            .await;
        client
            .send(CommandSeek {
                consumer_id: id,
                request_id: id,
                message_publish_time: Some(0),
                ..Default::default()
            })
            .await;
    }
    server.healthy("unknown ids").await;

    // 10,000 sockets that connect and say nothing.
    let mut idle = Vec::with_capacity(IDLE_SOCKETS);
    for _ in 0..IDLE_SOCKETS {
        match TcpStream::connect(addr).await {
            Ok(socket) => idle.push(socket),
            Err(e) => panic!("connect {} failed: {e}", idle.len()),
        }
    }
    server.healthy("10000 idle sockets").await;
    drop(idle);
    server.healthy("idle sockets closed").await;
    let _ = server.child.kill().await;
}
