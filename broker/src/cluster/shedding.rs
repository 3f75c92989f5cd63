//! Automatic load shedding: a broker holding far more bundles than the least loaded live broker
//! unloads some of its own, and the lookups that follow place them on the brokers with the
//! fewest bundles ([`super::assign`]). The load measure is the bundle count, the same one
//! assignment uses, so the two never disagree; there is no leader — each broker sheds only its
//! own bundles, judged from the watched ownership records every broker sees.
//!
//! Rule, every `interval`: with `mine` bundles here and `min` on the least loaded live broker,
//! if `mine − min ≥ 2`, shed `(mine − min) / 2` bundles (at most `max_per_round`), only ones held
//! longer than `grace` (so a bundle that just moved is not moved again, and a broker that just
//! started is not shed into). After shedding, a broker waits `grace` before it checks again:
//! shed bundles count for nobody until clients reconnect and their lookups place them, and
//! counting before that would shed more than the gap. Off with `load_balancer_enabled = false`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// When and how much to shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SheddingSettings {
    pub interval: Duration,
    pub grace: Duration,
    pub max_per_round: usize,
}

/// Which of `mine` (bundle, held since) to shed, given every live broker's bundle count
/// (`counts`, this broker's included as `me`).
pub fn to_shed<B: Clone + Ord>(
    me: &str,
    counts: &HashMap<String, usize>,
    mine: &[(B, Instant)],
    now: Instant,
    settings: &SheddingSettings,
) -> Vec<B> {
    let own = mine.len();
    let Some(min) = counts
        .iter()
        .filter(|(broker, _)| broker.as_str() != me)
        .map(|(_, &n)| n)
        .min()
    else {
        return Vec::new(); // alone in the cluster
    };
    if own < min + 2 {
        return Vec::new();
    }
    let count = ((own - min) / 2).min(settings.max_per_round);
    let mut eligible: Vec<&(B, Instant)> = mine
        .iter()
        .filter(|(_, since)| now.saturating_duration_since(*since) >= settings.grace)
        .collect();
    // The most recently acquired first: the longest-held bundles stay put.
    eligible.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    eligible
        .into_iter()
        .take(count)
        .map(|(b, _)| b.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max: usize) -> SheddingSettings {
        SheddingSettings {
            interval: Duration::from_secs(1),
            grace: Duration::from_secs(10),
            max_per_round: max,
        }
    }

    fn counts(pairs: &[(&str, usize)]) -> HashMap<String, usize> {
        pairs.iter().map(|(b, n)| (b.to_string(), *n)).collect()
    }

    #[test]
    fn sheds_half_the_gap_to_the_least_loaded_broker() {
        let now = Instant::now();
        let old = now - Duration::from_secs(60);
        let mine: Vec<(u32, Instant)> = (0..8).map(|i| (i, old)).collect();
        let shed = to_shed(
            "a",
            &counts(&[("a", 8), ("b", 0), ("c", 4)]),
            &mine,
            now,
            &settings(10),
        );
        assert_eq!(shed.len(), 4);
        assert_eq!(
            to_shed(
                "a",
                &counts(&[("a", 8), ("b", 0)]),
                &mine,
                now,
                &settings(3)
            )
            .len(),
            3
        );
        // Balanced enough: nothing moves.
        let mine: Vec<(u32, Instant)> = (0..5).map(|i| (i, old)).collect();
        assert!(
            to_shed(
                "a",
                &counts(&[("a", 5), ("b", 4)]),
                &mine,
                now,
                &settings(10)
            )
            .is_empty()
        );
        assert!(
            to_shed("a", &counts(&[("a", 5)]), &mine, now, &settings(10)).is_empty(),
            "alone"
        );
    }

    #[test]
    fn bundles_inside_the_grace_period_stay() {
        let now = Instant::now();
        let old = now - Duration::from_secs(60);
        let new = now - Duration::from_secs(1);
        let mine = vec![
            (1u32, old),
            (2, new),
            (3, new),
            (4, old),
            (5, new),
            (6, new),
        ];
        let shed = to_shed(
            "a",
            &counts(&[("a", 6), ("b", 0)]),
            &mine,
            now,
            &settings(10),
        );
        assert_eq!(shed, vec![1, 4], "only the two held past the grace period");
        let mine = vec![
            (1u32, now - Duration::from_secs(20)),
            (2, old),
            (3, old),
            (4, old),
        ];
        let shed = to_shed(
            "a",
            &counts(&[("a", 4), ("b", 0)]),
            &mine,
            now,
            &settings(10),
        );
        assert_eq!(shed, vec![1, 2], "the most recently acquired go first");
    }
}
