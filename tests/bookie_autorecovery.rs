//! Autorecovery with real processes: three `magnetar bookie serve` processes and a metadata node;
//! one bookie holding copies is killed with SIGKILL and its data deleted; a
//! `magnetar bookie autorecovery` process copies what it held to the others until every entry
//! is stored on its full write quorum again, and `magnetar bookie underreplicated` shows the
//! backlog in the meantime.

use crate::bookie_harness;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Instant;

use bookie_harness::{BookieProcess, ONE_AT_A_TIME, bookie_command, listed, metadata, wait_until};
use futures::future::try_join_all;
use magnetar_bookie::ledger::{LedgerClient, LedgerConfig, LedgerMetadata, LedgerOptions};
use magnetar_bookie::simpletest::payload;
use magnetar_metadata::MetadataClient;
use tokio::process::Command;

const ENTRY_SIZE: usize = 4096;
const ENTRIES: u64 = 400;

async fn ledger_metadata(metadata: &MetadataClient, id: u64) -> anyhow::Result<LedgerMetadata> {
    let record = metadata
        .get(&format!("/ledgers/{id:020}"))
        .await?
        .ok_or_else(|| anyhow::anyhow!("ledger {id} has no metadata"))?;
    Ok(serde_json::from_slice(&record.value)?)
}

/// The admin view, as `magnetar bookie underreplicated --json` prints it.
async fn under_replicated(servers: &str) -> anyhow::Result<serde_json::Value> {
    let out = bookie_command(&["underreplicated", "--metadata", servers, "--json"]).await?;
    Ok(serde_json::from_str(&out)?)
}

/// Every entry of ledger `id` is on every bookie of its write set, none of them in `gone`.
async fn fully_replicated(
    metadata: &MetadataClient,
    id: u64,
    gone: &HashSet<String>,
) -> anyhow::Result<bool> {
    let meta = ledger_metadata(metadata, id).await?;
    if meta.all_bookies().iter().any(|b| gone.contains(b)) {
        return Ok(false);
    }
    for entry in 0..ENTRIES {
        let fragment = meta.fragment_for(entry);
        for slot in meta.write_set(entry) {
            let bookie = &fragment.bookies[slot];
            let conn = magnetar_bookie::BookieClient::connect(bookie.parse()?).await?;
            let read = conn.read_entry(id, entry, false).await;
            conn.close().await;
            match read {
                Ok(reply) => anyhow::ensure!(
                    reply.payload == payload(entry, ENTRY_SIZE),
                    "ledger {id} entry {entry} on {bookie} is corrupt"
                ),
                Err(_) => return Ok(false),
            }
        }
    }
    Ok(true)
}

/// 1. Start a metadata node and three bookie processes.
/// 2. Write and close five ledgers with E=Qw=Qa=2 (as brokers' default persistence) and one with
///    E=3, Qw=2 (it can only be repaired once a fourth bookie exists); write a seventh, E=Qw=Qa=2,
///    and leave it open with its writer idle (a topic nobody publishes to).
/// 3. SIGKILL a bookie of both ledger 0's and the open ledger's ensembles and delete its data.
/// 4. Start `magnetar bookie autorecovery` with a short lost-bookie delay and open-ledger grace;
///    wait until the E=2 ledgers — the open one included, which the auditor fences and closes —
///    are back on two live bookies each, every entry read back from both copies, while
///    `magnetar bookie underreplicated --json` still lists the E=3 ledger with its error. The
///    idle writer's next add is refused as fenced.
/// 5. Start a fourth bookie: the last ledger is repaired too and the admin view empties.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_bookie_is_re_replicated_to_the_write_quorum() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir()?;
    let (_node, client, servers) = metadata().await?;
    let mut bookies = Vec::new();
    for i in 0..3 {
        bookies.push(BookieProcess::start(&dir.path().join(format!("b{i}")), &servers, "").await?);
    }
    wait_until("three bookies are registered", || async {
        Ok((listed(&servers).await?.len() == 3).then_some(()))
    })
    .await?;

    // 2. Six closed ledgers.
    let ledgers = LedgerClient::new(client.clone(), LedgerOptions::default());
    let mut ids = Vec::new();
    for n in 0..6 {
        let config = if n == 5 {
            LedgerConfig {
                ensemble: 3,
                write_quorum: 2,
                ack_quorum: 2,
            }
        } else {
            LedgerConfig {
                ensemble: 2,
                write_quorum: 2,
                ack_quorum: 2,
            }
        };
        let writer = ledgers.create(config, Default::default()).await?;
        let adds: Vec<_> = (0..ENTRIES)
            .map(|e| writer.append(payload(e, ENTRY_SIZE)))
            .collect();
        try_join_all(adds).await?;
        writer.close().await?;
        ids.push(writer.id());
    }
    let open_writer = ledgers
        .create(
            LedgerConfig {
                ensemble: 2,
                write_quorum: 2,
                ack_quorum: 2,
            },
            Default::default(),
        )
        .await?;
    let adds: Vec<_> = (0..ENTRIES)
        .map(|e| open_writer.append(payload(e, ENTRY_SIZE)))
        .collect();
    try_join_all(adds).await?;
    let open_id = open_writer.id();
    ids.push(open_id);
    let no_loss = HashSet::new();
    for &id in &ids {
        assert!(
            fully_replicated(&client, id, &no_loss).await?,
            "ledger {id} before the loss"
        );
    }

    // 3. Lose, for good, a bookie that ledger 0 is stored on.
    // Two 2-bookie ensembles out of three bookies always share one.
    let open_ensemble = ledger_metadata(&client, open_id).await?.fragments[0]
        .bookies
        .clone();
    let victim = ledger_metadata(&client, ids[0]).await?.fragments[0]
        .bookies
        .iter()
        .find(|b| open_ensemble.contains(b))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the ensembles share no bookie"))?;
    let index = bookies
        .iter()
        .position(|b| b.address() == victim)
        .ok_or_else(|| anyhow::anyhow!("{victim} is not one of ours"))?;
    let mut dead = bookies.remove(index);
    dead.kill().await?;
    std::fs::remove_dir_all(dead.dir.join("journal"))?;
    std::fs::remove_dir_all(dead.dir.join("ledgers"))?;
    let gone: HashSet<String> = [victim.clone()].into_iter().collect();
    let mut damaged_e2 = Vec::new();
    let mut bytes_lost = 0u64;
    for &id in &ids {
        let meta = ledger_metadata(&client, id).await?;
        if let Some(slot) = meta.fragments[0].bookies.iter().position(|b| *b == victim) {
            if meta.ensemble_size == 2 {
                damaged_e2.push(id);
            }
            let on_slot = (0..ENTRIES)
                .filter(|&e| meta.write_set(e).contains(&slot))
                .count();
            bytes_lost += on_slot as u64 * ENTRY_SIZE as u64;
        }
    }
    assert!(damaged_e2.contains(&ids[0]) && damaged_e2.contains(&open_id));

    // 4. Autorecovery.
    let started = Instant::now();
    let log = std::fs::File::create(dir.path().join("autorecovery.log"))?;
    let _autorecovery = Command::new(env!("CARGO_BIN_EXE_magnetar"))
        .args(["bookie", "autorecovery", "--metadata", &servers])
        .args([
            "--lost-bookie-delay-ms",
            "500",
            "--audit-interval-ms",
            "200",
            "--open-ledger-grace-ms",
            "500",
        ])
        .args(["--name", "test-auditor"])
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()?;
    wait_until("the E=2 ledgers are back on two live bookies", || async {
        for &id in &damaged_e2 {
            if !fully_replicated(&client, id, &gone).await? {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await?;
    let elapsed = started.elapsed();
    let closed = ledger_metadata(&client, open_id).await?;
    assert_eq!(closed.state, magnetar_bookie::ledger::LedgerState::Closed);
    assert_eq!(
        closed.last_entry_id,
        ENTRIES as i64 - 1,
        "every acknowledged entry kept"
    );
    assert!(matches!(
        open_writer.append(payload(ENTRIES, ENTRY_SIZE)).await,
        Err(magnetar_bookie::ledger::LedgerError::Fenced(_))
    ));
    // The E=3 ledger has no spare bookie to go to: the admin view shows it, with the reason.
    let view = wait_until(
        "the admin view lists the E=3 ledger with its error",
        || async {
            let view = under_replicated(&servers).await?;
            let stuck = view["ledgers"].as_array().is_some_and(|ledgers| {
                ledgers.len() == 1
                    && ledgers[0]["ledgerId"] == ids[5]
                    && ledgers[0]["lastError"]
                        .as_str()
                        .is_some_and(|e| e.contains("not enough"))
            });
            Ok(stuck.then_some(view))
        },
    )
    .await?;
    assert_eq!(view["auditor"]["owner"], "test-auditor");
    assert_eq!(view["ledgers"][0]["lostBookies"][0], victim.as_str());
    println!(
        "re-replication: {:.1} MB of lost copies back within {:.2} s of starting autorecovery \
         (500 ms lost-bookie delay and open-ledger grace, 200 ms audits) = {:.1} MB/s",
        bytes_lost as f64 / 1e6,
        elapsed.as_secs_f64(),
        bytes_lost as f64 / 1e6 / elapsed.as_secs_f64()
    );

    // 5. A fourth bookie: the last ledger gets its copies back too.
    bookies.push(BookieProcess::start(&dir.path().join("b3"), &servers, "").await?);
    wait_until("every ledger is fully replicated", || async {
        for &id in &ids {
            if !fully_replicated(&client, id, &gone).await? {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await?;
    wait_until("the admin view is empty", || async {
        let view = under_replicated(&servers).await?;
        Ok(view["ledgers"]
            .as_array()
            .is_some_and(Vec::is_empty)
            .then_some(()))
    })
    .await?;
    // And through the ledger client, as brokers read: every entry of every ledger.
    for &id in &ids {
        let reader = ledgers.open(id).await?;
        let entries = reader.read(0, ENTRIES - 1).await?;
        for (e, data) in entries.iter().enumerate() {
            assert_eq!(data.as_ref(), payload(e as u64, ENTRY_SIZE).as_ref());
        }
    }
    Ok(())
}
