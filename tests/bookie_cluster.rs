//! Four real `magnetar bookie serve --metadata …` processes and a metadata node: writes through
//! the ledger client survive `kill -9` of a bookie of the ledger's ensemble.

use crate::bookie_harness;

use std::collections::{BTreeMap, VecDeque};
use std::process::Stdio;
use std::time::Duration;

use bookie_harness::{BookieProcess, ONE_AT_A_TIME, TIMEOUT, listed, metadata, wait_until};
use magnetar_bookie::BookieClient;
use magnetar_bookie::ledger::{LedgerClient, LedgerConfig, LedgerMetadata, LedgerOptions};
use magnetar_bookie::simpletest::payload;
use magnetar_metadata::MetadataClient;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const ENTRY_SIZE: usize = 512;

/// Four bookies in `dir`, all registered and writable.
async fn four_bookies(dir: &std::path::Path, servers: &str) -> anyhow::Result<Vec<BookieProcess>> {
    let mut bookies = Vec::new();
    for i in 0..4 {
        let path = dir.join(format!("bookie-{i}"));
        bookies.push(BookieProcess::start(&path, servers, "").await?);
    }
    all_writable(&bookies, servers).await?;
    Ok(bookies)
}

async fn all_writable(bookies: &[BookieProcess], servers: &str) -> anyhow::Result<()> {
    wait_until("every bookie is registered writable", || async {
        let listed = listed(servers).await?;
        let up = bookies
            .iter()
            .all(|b| (listed.iter()).any(|info| info.address == b.address() && !info.read_only));
        Ok(up.then_some(()))
    })
    .await
}

/// The metadata of the (only) ledger `magnetar bookie simpletest` created.
async fn simpletest_ledger(metadata: &MetadataClient) -> anyhow::Result<Option<LedgerMetadata>> {
    for record in metadata.list("/ledgers/").await? {
        let ledger: LedgerMetadata = serde_json::from_slice(&record.value)?;
        if ledger.custom.get("application").map(String::as_str) == Some("simpletest") {
            return Ok(Some(ledger));
        }
    }
    Ok(None)
}

/// 1. Start a metadata node and four bookie processes registered in it.
/// 2. Run `magnetar bookie simpletest --ensemble 3 --write-quorum 2 --ack-quorum 2
///    --entries 20000` (paced, so that it runs for a few seconds) as a child process.
/// 3. Once it reports acknowledged entries, read its ledger's metadata and `kill -9` the first
///    bookie of the ensemble.
/// 4. simpletest succeeds: an ensemble change brought in the fourth bookie, and every entry was
///    read back and verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simpletest_survives_kill_9_of_an_ensemble_bookie() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let (cluster, metadata, servers) = metadata().await?;
    let dir = tempfile::tempdir()?;
    let mut bookies = four_bookies(dir.path(), &servers).await?;

    let mut simpletest = Command::new(env!("CARGO_BIN_EXE_magnetar"))
        .args(["bookie", "simpletest", "--metadata", &servers])
        .args([
            "--ensemble",
            "3",
            "--write-quorum",
            "2",
            "--ack-quorum",
            "2",
        ])
        .args([
            "--entries",
            "20000",
            "--entry-size",
            "1024",
            "--rate",
            "4000",
        ])
        .arg("--json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdout = simpletest.stdout.take().expect("piped stdout");
    let stdout = tokio::spawn(async move {
        let mut out = String::new();
        stdout.read_to_string(&mut out).await.map(|_| out)
    });
    let stderr = simpletest.stderr.take().expect("piped stderr");
    let (acked_tx, mut acked) = watch::channel(0u64);
    let stderr = tokio::spawn(async move {
        let (mut lines, mut all) = (BufReader::new(stderr).lines(), String::new());
        while let Ok(Some(line)) = lines.next_line().await {
            let count = line.strip_prefix("progress: ").and_then(|rest| {
                let (count, _) = rest.split_once(' ')?;
                count.parse::<u64>().ok()
            });
            if let Some(count) = count {
                acked_tx.send_replace(count);
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });

    tokio::time::timeout(TIMEOUT, acked.wait_for(|n| *n >= 2000)).await??;
    let ledger = wait_until("simpletest's ledger is in metadata", || {
        simpletest_ledger(&metadata)
    })
    .await?;
    let victim = ledger.fragments[0].bookies[0].clone();
    (bookies.iter_mut())
        .find(|b| b.address() == victim)
        .ok_or_else(|| anyhow::anyhow!("{victim} is none of the started bookies"))?
        .kill()
        .await?;

    let status = tokio::time::timeout(TIMEOUT * 2, simpletest.wait()).await??;
    let log = stderr.await?;
    anyhow::ensure!(status.success(), "simpletest failed: {status}\n{log}");
    let report: serde_json::Value = serde_json::from_str(&stdout.await??)?;
    assert_eq!(report["entries"], 20000, "{report}");
    assert_eq!(report["verified"], true, "{report}");
    assert!(report["ensemble_changes"].as_u64() >= Some(1), "{report}");
    let last = report["ensembles"]
        .as_array()
        .and_then(|e| e.last())
        .cloned()
        .unwrap_or_default();
    assert!(
        !last.as_array().into_iter().flatten().any(|b| *b == *victim),
        "the killed bookie was replaced: {report}"
    );
    cluster.shutdown().await;
    Ok(())
}

/// Pipelines appends (up to 500 in flight) until `stop`; publishes how many are acknowledged
/// (in order, so entries `0..n`), returns the final count.
async fn write_until(
    writer: magnetar_bookie::ledger::LedgerWriter,
    acked: watch::Sender<u64>,
    stop: CancellationToken,
) -> anyhow::Result<u64> {
    let mut pending = VecDeque::new();
    let mut next = 0;
    loop {
        if !stop.is_cancelled() && pending.len() < 500 {
            pending.push_back(writer.append(payload(next, ENTRY_SIZE)));
            next += 1;
            continue;
        }
        let Some(add) = pending.pop_front() else {
            return Ok(*acked.borrow());
        };
        let entry_id = add.await?;
        acked.send_replace(entry_id + 1);
    }
}

/// Steps, in each of three rounds, with four bookie processes and a ledger client in this process:
/// 1. create a ledger (E=3, Qw=2, Qa=2) and pipeline appends into it;
/// 2. after 1000 acknowledgements `kill -9` a bookie of its ensemble; appends go on (ensemble
///    change) for another 1000, then stop;
/// 3. restart the killed bookie on its address and data: every acknowledged entry of the first
///    fragment that it stored reads back from it intact;
/// 4. close the ledger: every acknowledged entry reads back through the ledger client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_while_a_ledger_client_writes() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let (cluster, metadata, servers) = metadata().await?;
    let dir = tempfile::tempdir()?;
    let mut bookies = four_bookies(dir.path(), &servers).await?;
    let options = LedgerOptions {
        add_timeout: Duration::from_secs(5),
        ..LedgerOptions::default()
    };
    let ledgers = LedgerClient::new(metadata.clone(), options);
    let config = LedgerConfig {
        ensemble: 3,
        write_quorum: 2,
        ack_quorum: 2,
    };
    for round in 0..3 {
        all_writable(&bookies, &servers).await?;
        let writer = ledgers.create(config, BTreeMap::new()).await?;
        let slot = round % 3;
        let victim = writer.metadata().fragments[0].bookies[slot].clone();
        let (acked_tx, mut acked) = watch::channel(0u64);
        let stop = CancellationToken::new();
        let writing = tokio::spawn(write_until(writer.clone(), acked_tx, stop.clone()));

        tokio::time::timeout(TIMEOUT, acked.wait_for(|n| *n >= 1000)).await??;
        let bookie = (bookies.iter_mut())
            .find(|b| b.address() == victim)
            .ok_or_else(|| anyhow::anyhow!("{victim} is none of the started bookies"))?;
        bookie.kill().await?;
        let at_kill = *acked.borrow();
        tokio::time::timeout(TIMEOUT, acked.wait_for(|n| *n >= at_kill + 1000)).await??;
        stop.cancel();
        let total = writing.await??;
        bookie.restart().await?;

        let meta = writer.metadata();
        anyhow::ensure!(
            meta.fragments.len() >= 2,
            "round {round}: no ensemble change"
        );
        let boundary = meta.fragments[1].first_entry;
        let client = BookieClient::connect(bookie.addr).await?;
        let mut checked = 0;
        for entry_id in (0..boundary).filter(|e| meta.write_set(*e).contains(&slot)) {
            let read = client.read_entry(writer.id(), entry_id, false).await?;
            anyhow::ensure!(
                read.payload == payload(entry_id, ENTRY_SIZE),
                "round {round}: entry {entry_id} differs on the restarted bookie"
            );
            checked += 1;
        }
        anyhow::ensure!(checked > 0, "round {round}: nothing to check on {victim}");

        assert_eq!(writer.close().await?, total as i64 - 1);
        let reader = ledgers.open(writer.id()).await?;
        let entries = reader.read(0, total - 1).await?;
        for (entry_id, data) in entries.iter().enumerate() {
            anyhow::ensure!(
                *data == payload(entry_id as u64, ENTRY_SIZE),
                "round {round}: entry {entry_id} reads back different"
            );
        }
    }
    cluster.shutdown().await;
    Ok(())
}
