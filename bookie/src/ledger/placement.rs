//! Where a ledger's copies go: the bookies of a new ensemble, the replacement for a bookie that
//! failed under a writer, and the new home of copies re-replicated off a lost bookie.
//!
//! [`SpreadPlacement`], the default, picks at random, weighted by each bookie's free-disk
//! fraction (floored at [`MIN_WEIGHT`]), so ledgers spread over every writable bookie and a
//! filling bookie gets fewer new ones well before its read-only threshold. It never picks a
//! bookie twice for one ensemble, nor one the ensemble already holds.

use std::fmt::Debug;

use rand::{Rng, RngCore};

use crate::registry::BookieInfo;

/// The weight of a bookie with (nearly) no free disk, relative to an empty one's 1.0.
pub const MIN_WEIGHT: f64 = 0.05;

/// Chooses bookies for ensembles. Implementations must be cheap: the ledger client calls them
/// on every ledger creation and ensemble change.
pub trait PlacementPolicy: Debug + Send + Sync {
    /// `size` distinct bookies out of `candidates` (all writable), or `None` if there are too
    /// few.
    fn new_ensemble(
        &self,
        size: usize,
        candidates: &[BookieInfo],
        rng: &mut dyn RngCore,
    ) -> Option<Vec<String>>;

    /// One writable bookie that `ensemble` does not hold, or `None` if there is none.
    fn replacement(
        &self,
        ensemble: &[String],
        candidates: &[BookieInfo],
        rng: &mut dyn RngCore,
    ) -> Option<String> {
        let spare: Vec<BookieInfo> = candidates
            .iter()
            .filter(|b| !ensemble.contains(&b.address))
            .cloned()
            .collect();
        self.new_ensemble(1, &spare, rng)
            .and_then(|mut chosen| chosen.pop())
    }
}

/// Random placement weighted by free disk (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct SpreadPlacement;

fn weight(bookie: &BookieInfo) -> f64 {
    if bookie.total_disk_bytes == 0 {
        return 1.0; // not reported (yet): as if empty
    }
    (bookie.free_disk_bytes as f64 / bookie.total_disk_bytes as f64).clamp(MIN_WEIGHT, 1.0)
}

impl PlacementPolicy for SpreadPlacement {
    fn new_ensemble(
        &self,
        size: usize,
        candidates: &[BookieInfo],
        rng: &mut dyn RngCore,
    ) -> Option<Vec<String>> {
        let mut unique: Vec<&BookieInfo> = Vec::with_capacity(candidates.len());
        for bookie in candidates {
            if !unique.iter().any(|b| b.address == bookie.address) {
                unique.push(bookie);
            }
        }
        if unique.len() < size {
            return None;
        }
        // Weighted sampling without replacement (Efraimidis–Spirakis): every candidate draws the
        // key ln(u) / w and the `size` largest keys win.
        let mut keyed: Vec<(f64, &BookieInfo)> = unique
            .into_iter()
            .map(|b| {
                let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
                (u.ln() / weight(b), b)
            })
            .collect();
        keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
        Some(
            keyed
                .into_iter()
                .take(size)
                .map(|(_, b)| b.address.clone())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn bookie(address: &str, free: u64) -> BookieInfo {
        BookieInfo {
            address: address.into(),
            read_only: false,
            free_disk_bytes: free,
            total_disk_bytes: 100,
        }
    }

    #[test]
    fn ensembles_are_distinct_and_spread_over_every_bookie() {
        let candidates: Vec<BookieInfo> = (0..6).map(|i| bookie(&format!("b{i}"), 100)).collect();
        let mut rng = StdRng::seed_from_u64(7);
        let mut picks: HashMap<String, usize> = HashMap::new();
        for _ in 0..3000 {
            let ensemble = SpreadPlacement
                .new_ensemble(3, &candidates, &mut rng)
                .expect("enough bookies");
            let mut sorted = ensemble.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 3, "{ensemble:?}");
            for b in ensemble {
                *picks.entry(b).or_default() += 1;
            }
        }
        // 9000 picks over 6 equal bookies: 1500 each on average.
        for i in 0..6 {
            let n = picks[&format!("b{i}")];
            assert!(
                (1200..1800).contains(&n),
                "b{i} picked {n} times: {picks:?}"
            );
        }
    }

    #[test]
    fn too_few_candidates_is_none() {
        let candidates = vec![bookie("a", 50), bookie("b", 50), bookie("a", 50)];
        let mut rng = StdRng::seed_from_u64(1);
        assert!(
            SpreadPlacement
                .new_ensemble(3, &candidates, &mut rng)
                .is_none()
        );
        assert_eq!(
            SpreadPlacement
                .new_ensemble(2, &candidates, &mut rng)
                .map(|e| e.len()),
            Some(2)
        );
    }

    #[test]
    fn replacements_avoid_the_ensemble_and_are_not_always_the_first_spare() {
        let candidates: Vec<BookieInfo> = (0..5).map(|i| bookie(&format!("b{i}"), 90)).collect();
        let ensemble = vec!["b0".to_string(), "b1".to_string()];
        let mut rng = StdRng::seed_from_u64(3);
        let mut picks: HashMap<String, usize> = HashMap::new();
        for _ in 0..900 {
            let r = SpreadPlacement
                .replacement(&ensemble, &candidates, &mut rng)
                .expect("a spare bookie");
            assert!(!ensemble.contains(&r));
            *picks.entry(r).or_default() += 1;
        }
        for b in ["b2", "b3", "b4"] {
            assert!((200..400).contains(&picks[b]), "{picks:?}");
        }
        let full = vec!["b0".to_string(), "b1".to_string()];
        assert!(
            SpreadPlacement
                .replacement(&full, &candidates[..2], &mut rng)
                .is_none()
        );
    }

    #[test]
    fn a_filling_bookie_gets_fewer_ledgers() {
        let candidates = vec![bookie("empty", 100), bookie("full", 5), bookie("half", 50)];
        let mut rng = StdRng::seed_from_u64(11);
        let mut picks: HashMap<String, usize> = HashMap::new();
        for _ in 0..3000 {
            for b in SpreadPlacement
                .new_ensemble(1, &candidates, &mut rng)
                .expect("a bookie")
            {
                *picks.entry(b).or_default() += 1;
            }
        }
        assert!(picks["empty"] > picks["half"], "{picks:?}");
        assert!(
            picks["half"] > 5 * picks.get("full").copied().unwrap_or(0),
            "{picks:?}"
        );
    }
}
