//! A real `magnetar bookie serve --metadata …` process and the metadata service: registration,
//! read-only on a full disk, and garbage collection of ledgers deleted from metadata.

use crate::bookie_harness;

use std::collections::BTreeMap;

use bookie_harness::{BookieProcess, listed, metadata, registration, wait_until};
use magnetar_bookie::BookieClient;
use magnetar_bookie::ledger::metadata::key as ledger_key;
use magnetar_bookie::ledger::{LedgerClient, LedgerConfig, LedgerError, LedgerOptions};
use magnetar_bookie::simpletest::payload;
use magnetar_metadata::Expected;
use magnetar_protocol::bookie::StatusCode;

/// 1. Start a bookie registered in a metadata node; `bookie list --json` shows it, writable,
///    with its disk figures.
/// 2. Close its metadata session from outside (as an expiry would): the key goes, and the
///    bookie registers again with a new session.
/// 3. `kill -9` it: its registration disappears once the session's TTL runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_follows_the_process_and_its_session() -> anyhow::Result<()> {
    let (cluster, metadata, servers) = metadata().await?;
    let dir = tempfile::tempdir()?;
    let mut bookie = BookieProcess::start(dir.path(), &servers, "").await?;
    let address = bookie.address();

    let info = wait_until("the bookie is listed", || async {
        let listed = listed(&servers).await?;
        Ok(listed.into_iter().find(|b| b.address == address))
    })
    .await?;
    assert!(!info.read_only);
    assert!(info.total_disk_bytes > 0 && info.free_disk_bytes <= info.total_disk_bytes);

    let (_, session) = registration(&metadata, &address)
        .await?
        .ok_or_else(|| anyhow::anyhow!("registration missing"))?;
    metadata.close_session(session).await?;
    wait_until("the bookie registers with a new session", || async {
        let current = registration(&metadata, &address).await?;
        Ok(current.filter(|(_, s)| *s != session).map(|_| ()))
    })
    .await?;

    bookie.kill().await?;
    wait_until("the killed bookie's registration expires", || async {
        let listed = listed(&servers).await?;
        Ok((!listed.iter().any(|b| b.address == address)).then_some(()))
    })
    .await?;
    cluster.shutdown().await;
    Ok(())
}

/// 1. Start a bookie whose disk threshold is 0%: every disk is "full".
/// 2. It registers read-only, refuses adds with `READ_ONLY`, and ledger clients do not choose it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_makes_the_bookie_read_only() -> anyhow::Result<()> {
    let (cluster, metadata, servers) = metadata().await?;
    let dir = tempfile::tempdir()?;
    let extra = "disk_usage_threshold = 0.0\ndisk_usage_lwm_threshold = 0.0";
    let bookie = BookieProcess::start(dir.path(), &servers, extra).await?;
    let address = bookie.address();
    let info = wait_until("the bookie is registered", || async {
        Ok(registration(&metadata, &address)
            .await?
            .map(|(info, _)| info))
    })
    .await?;
    assert!(info.read_only, "registered read-only from the start");
    let listed = listed(&servers).await?;
    assert!(listed.iter().any(|b| b.address == address && b.read_only));

    let client = BookieClient::connect(bookie.addr).await?;
    let add = magnetar_protocol::bookie::AddEntryRequest {
        ledger_id: 1,
        entry_id: 0,
        last_add_confirmed: None,
        payload: b"refused".to_vec(),
        recovery: false,
    };
    let refused = client.add_entry(add).await;
    assert_eq!(
        refused.err().and_then(|e| e.status()),
        Some(StatusCode::ReadOnly)
    );

    let ledgers = LedgerClient::new(metadata.clone(), LedgerOptions::default());
    let config = LedgerConfig {
        ensemble: 1,
        write_quorum: 1,
        ack_quorum: 1,
    };
    assert!(matches!(
        ledgers.create(config, BTreeMap::new()).await,
        Err(LedgerError::NotEnoughBookies { available: 0, .. })
    ));
    cluster.shutdown().await;
    Ok(())
}

/// 1. Through the ledger client, write two ledgers on one bookie.
/// 2. Delete the first one's metadata key only (as if the client died before deleting it from
///    the bookie).
/// 3. The bookie's garbage collection removes that ledger from its storage; the other ledger,
///    whose metadata exists, stays readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_collects_ledgers_deleted_from_metadata() -> anyhow::Result<()> {
    let (cluster, metadata, servers) = metadata().await?;
    let dir = tempfile::tempdir()?;
    let bookie = BookieProcess::start(dir.path(), &servers, "").await?;
    let address = bookie.address();
    wait_until("the bookie is registered", || async {
        Ok(registration(&metadata, &address).await?.map(|_| ()))
    })
    .await?;
    let ledgers = LedgerClient::new(metadata.clone(), LedgerOptions::default());
    let config = LedgerConfig {
        ensemble: 1,
        write_quorum: 1,
        ack_quorum: 1,
    };
    let mut ids = Vec::new();
    for _ in 0..2 {
        let writer = ledgers.create(config, BTreeMap::new()).await?;
        for i in 0..10 {
            writer.append(payload(i, 100)).await?;
        }
        writer.close().await?;
        ids.push(writer.id());
    }
    let (deleted, kept) = (ids[0], ids[1]);
    assert!(metadata.delete(&ledger_key(deleted), Expected::Any).await?);

    let client = BookieClient::connect(bookie.addr).await?;
    wait_until("the deleted ledger is collected", || async {
        match client.read_entry(deleted, 0, false).await {
            Ok(_) => Ok(None),
            Err(e) if e.status() == Some(StatusCode::NoSuchLedger) => Ok(Some(())),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    // Collection took at least two passes, in each of which the kept ledger had metadata.
    for entry_id in 0..10 {
        let read = client.read_entry(kept, entry_id, false).await?;
        assert_eq!(read.payload, payload(entry_id, 100).to_vec());
    }
    let reader = ledgers.open(kept).await?;
    assert_eq!(reader.read(0, 9).await?.len(), 10);
    cluster.shutdown().await;
    Ok(())
}
