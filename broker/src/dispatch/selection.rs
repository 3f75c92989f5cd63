//! Which consumer comes next: Shared's priority round-robin and Failover's active consumer.
//!
//! Shared (Java's `AbstractDispatcherMultipleConsumers.getNextConsumer`): consumers are kept
//! sorted by priority level (0 first), arrival order within a level. Each pick starts from the
//! highest level that has a consumer with permits and goes round-robin within that level from
//! the last served index.
//!
//! Failover (Java's `AbstractDispatcherSingleActiveConsumer.pickAndScheduleActiveConsumer`):
//! consumers sorted by priority level, then name (Java `String.compareTo`, stable). Only the
//! highest-priority group counts. A partition of a partitioned topic takes index
//! `partition_index % group_size`; a non-partitioned topic (or with
//! `activeConsumerFailoverConsistentHashing`) hashes the topic name onto a ring holding 100
//! points per consumer at `murmur3(name + j)`, later consumers overwriting colliding points.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::ConsumerId;
use super::hash::java_murmur3_32;

/// A consumer as the selectors see it.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    pub id: ConsumerId,
    pub name: &'a str,
    pub priority_level: i32,
}

/// Where a consumer of `priority_level` goes in a priority-sorted list: after every consumer of
/// the same or a higher priority (smaller level).
pub fn insertion_index(levels: impl IntoIterator<Item = i32>, priority_level: i32) -> usize {
    levels
        .into_iter()
        .take_while(|l| *l <= priority_level)
        .count()
}

/// Java's priority round-robin over `order` (sorted by priority level). `rr_index` is the index
/// after the last served consumer.
pub fn next_round_robin(
    order: &[(ConsumerId, i32)],
    rr_index: &mut usize,
    available: impl Fn(ConsumerId) -> bool,
) -> Option<ConsumerId> {
    let mut level_start = 0;
    while level_start < order.len() {
        let level = order[level_start].1;
        let level_end = level_start
            + order[level_start..]
                .iter()
                .take_while(|(_, l)| *l == level)
                .count();
        let len = level_end - level_start;
        let start = if (level_start..level_end).contains(rr_index) {
            *rr_index
        } else {
            level_start
        };
        for k in 0..len {
            let i = level_start + (start - level_start + k) % len;
            if available(order[i].0) {
                *rr_index = i + 1;
                return Some(order[i].0);
            }
        }
        level_start = level_end;
    }
    None
}

fn java_string_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

const FAILOVER_RING_POINTS: u32 = 100;

/// Java's active consumer for a Failover (or Exclusive) subscription. `consumers` in arrival
/// order; `partition_index` is `None` for a non-partitioned topic.
pub fn pick_active(
    consumers: &[Candidate<'_>],
    partition_index: Option<u32>,
    topic_name: &str,
    consistent_hashing: bool,
) -> Option<ConsumerId> {
    let mut sorted: Vec<Candidate<'_>> = consumers.to_vec();
    sorted.sort_by(|a, b| {
        a.priority_level
            .cmp(&b.priority_level)
            .then_with(|| java_string_cmp(a.name, b.name))
    });
    let top = sorted.first()?.priority_level;
    let group = sorted
        .iter()
        .take_while(|c| c.priority_level == top)
        .count();
    let index = match partition_index {
        Some(i) if !consistent_hashing => i as usize % group,
        _ => {
            let mut ring: BTreeMap<u32, usize> = BTreeMap::new();
            for (i, c) in sorted[..group].iter().enumerate() {
                for j in 0..FAILOVER_RING_POINTS {
                    ring.insert(java_murmur3_32(format!("{}{j}", c.name).as_bytes()), i);
                }
            }
            let h = java_murmur3_32(topic_name.as_bytes());
            *ring.range(h..).next().or_else(|| ring.iter().next())?.1
        }
    };
    Some(sorted[index].id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_follows_javas_documented_example() {
        // Java's javadoc: C1..C3 at level 0 with permits 2,1,1; C4, C5 at level 1 with 2,1.
        let order = [(1, 0), (2, 0), (3, 0), (4, 1), (5, 1)];
        let mut permits = [0, 2, 1, 1, 2, 1];
        let mut rr = 0;
        let mut picks = Vec::new();
        while let Some(c) = next_round_robin(&order, &mut rr, |c| permits[c as usize] > 0) {
            permits[c as usize] -= 1;
            picks.push(c);
        }
        assert_eq!(picks, vec![1, 2, 3, 1, 4, 5, 4]);
    }

    #[test]
    fn insertion_keeps_priority_then_arrival_order() {
        assert_eq!(insertion_index([0, 0, 1, 2], 1), 3);
        assert_eq!(insertion_index([0, 0, 1, 2], 0), 2);
        assert_eq!(insertion_index([1, 2], 0), 0);
    }

    fn cand(id: ConsumerId, name: &str, priority_level: i32) -> Candidate<'_> {
        Candidate {
            id,
            name,
            priority_level,
        }
    }

    #[test]
    fn partitioned_failover_picks_partition_modulo_sorted_group() {
        let cs = [
            cand(1, "c", 0),
            cand(2, "a", 0),
            cand(3, "b", 0),
            cand(4, "0-low", 1),
        ];
        // Sorted group: a(2), b(3), c(1); the lower-priority consumer is not in the group.
        let pick = |i| pick_active(&cs, Some(i), "t", false);
        assert_eq!(
            [pick(0), pick(1), pick(2), pick(3)],
            [Some(2), Some(3), Some(1), Some(2)]
        );
        assert_eq!(pick_active(&[], Some(0), "t", false), None);
    }

    #[test]
    fn non_partitioned_failover_uses_the_topic_hash_ring() {
        let cs = [
            cand(1, "consumer-a", 0),
            cand(2, "consumer-b", 0),
            cand(3, "consumer-c", 0),
        ];
        let topic = "persistent://public/default/t";
        let picked = pick_active(&cs, None, topic, false);
        // Recompute Java's ring by hand for the expected owner.
        let mut ring = BTreeMap::new();
        for (i, name) in ["consumer-a", "consumer-b", "consumer-c"]
            .iter()
            .enumerate()
        {
            for j in 0..100 {
                ring.insert(
                    java_murmur3_32(format!("{name}{j}").as_bytes()),
                    i as u64 + 1,
                );
            }
        }
        let h = java_murmur3_32(topic.as_bytes());
        let expected = ring
            .range(h..)
            .next()
            .or_else(|| ring.iter().next())
            .map(|(_, c)| *c);
        assert_eq!(picked, expected);
        // Arrival order does not matter, only names.
        let reversed = [cs[2], cs[1], cs[0]];
        assert_eq!(pick_active(&reversed, None, topic, false), picked);
    }

    #[test]
    fn names_compare_like_java_strings() {
        // U+FFFD sorts after U+1F600 in UTF-16 (0xFFFD > 0xD83D), before it in UTF-8.
        assert_eq!(java_string_cmp("\u{FFFD}", "\u{1F600}"), Ordering::Greater);
        let cs = [cand(1, "\u{FFFD}", 0), cand(2, "\u{1F600}", 0)];
        assert_eq!(pick_active(&cs, Some(0), "t", false), Some(2));
    }
}
