//! Helpers shared by the bookie's integration tests: the bookie settings they run with
//! (small limits, so oversized input is cheap to send) and deterministic entry payloads to
//! verify reads against. The in-process bookie itself is `magnetar_testkit::bookie::TestBookie`.

#![allow(dead_code)]

use std::path::Path;

use magnetar_bookie::BookieConfig;
use magnetar_bookie::journal::JournalConfig;
use magnetar_protocol::bookie::AddEntryRequest;

/// Small segments and frequent checkpoints, so tests roll segments and remove old ones.
pub fn config(dir: &Path) -> BookieConfig {
    BookieConfig {
        journal_dir: dir.join("journal"),
        ledger_dir: dir.join("ledgers"),
        max_entry_size: 64 * 1024,
        max_frame_size: 128 * 1024,
        checkpoint_interval_ms: 200,
        // Read-only only on a completely full disk: the development disk may be nearly full.
        disk_usage_threshold: 1.0,
        disk_usage_lwm_threshold: 1.0,
        journal: JournalConfig {
            segment_size: 2 * 1024 * 1024,
            max_batch_bytes: 256 * 1024,
            ..JournalConfig::default()
        },
        ..BookieConfig::default()
    }
}

pub fn payload(ledger_id: u64, entry_id: u64) -> Vec<u8> {
    let len = 100 + (entry_id as usize * 37 + ledger_id as usize) % 900;
    (0..len)
        .map(|i| (ledger_id as usize * 31 + entry_id as usize * 7 + i) as u8)
        .collect()
}

pub fn add(ledger_id: u64, entry_id: u64, recovery: bool) -> AddEntryRequest {
    AddEntryRequest {
        ledger_id,
        entry_id,
        last_add_confirmed: entry_id.checked_sub(1),
        payload: payload(ledger_id, entry_id),
        recovery,
    }
}
