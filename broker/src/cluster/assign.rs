//! Which live broker gets an unowned bundle, sans-IO: the fewest owned bundles wins, and among
//! those the highest rendezvous hash of (bundle, broker), so that brokers deciding at the same
//! time from the same view pick the same broker and a burst of lookups (the partitions of one
//! topic) spreads over the brokers rather than piling onto the first.

/// A live broker and how many bundles it owns now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub broker_id: &'a str,
    pub owned_bundles: usize,
}

/// The broker for `bundle` (its full name `t/ns/0x…_0x…`), or `None` without candidates.
pub fn choose<'a>(bundle: &str, candidates: &[Candidate<'a>]) -> Option<&'a str> {
    let fewest = candidates.iter().map(|c| c.owned_bundles).min()?;
    candidates
        .iter()
        .filter(|c| c.owned_bundles == fewest)
        .max_by_key(|c| (rendezvous(bundle, c.broker_id), c.broker_id))
        .map(|c| c.broker_id)
}

fn rendezvous(bundle: &str, broker: &str) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(bundle.as_bytes());
    hasher.update(b"\0");
    hasher.update(broker.as_bytes());
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates<'a>(list: &[(&'a str, usize)]) -> Vec<Candidate<'a>> {
        list.iter()
            .map(|(id, n)| Candidate {
                broker_id: id,
                owned_bundles: *n,
            })
            .collect()
    }

    #[test]
    fn fewest_bundles_wins() {
        let list = candidates(&[("a:8080", 3), ("b:8080", 1), ("c:8080", 2)]);
        for i in 0..20 {
            assert_eq!(choose(&format!("t/ns/{i}"), &list), Some("b:8080"));
        }
        assert_eq!(choose("t/ns/x", &[]), None);
    }

    #[test]
    fn ties_spread_and_agree() {
        let list = candidates(&[("a:8080", 0), ("b:8080", 0)]);
        let picks: Vec<&str> = (0..32)
            .map(|i| choose(&format!("t/ns/0x{i:08x}"), &list).expect("a pick"))
            .collect();
        assert!(picks.contains(&"a:8080") && picks.contains(&"b:8080"));
        // The order candidates are listed in does not matter.
        let reversed = candidates(&[("b:8080", 0), ("a:8080", 0)]);
        for i in 0..32 {
            let bundle = format!("t/ns/0x{i:08x}");
            assert_eq!(choose(&bundle, &list), choose(&bundle, &reversed));
        }
    }
}
