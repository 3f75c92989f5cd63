//! Namespace bundles, sans-IO: a namespace's 32-bit hash space cut into ranges, each owned by
//! one broker at a time. As in Pulsar:
//! - a topic's hash is the zlib CRC-32 of its full name (`persistent://t/ns/x-partition-3`), so
//!   the partitions of one topic spread over bundles;
//! - boundaries `b0 = 0 < b1 < … < bn = 0xffffffff`; bundle *i* is `[b_i, b_{i+1})`, except the
//!   last, which is closed (`[b_{n-1}, 0xffffffff]`);
//! - a bundle is named `0x%08x_0x%08x` (lowercase), e.g. `0x00000000_0x40000000`;
//! - a split cuts a bundle at its midpoint (`range_equally_divide`); bundles are never merged.

use std::fmt;

use magnetar_admin_api::keys;

use crate::error::BrokerError;

/// The hash that places a topic in a bundle.
pub fn topic_hash(full_name: &str) -> u32 {
    crc32fast::hash(full_name.as_bytes())
}

/// One hash range of a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BundleRange {
    pub lower: u32,
    pub upper: u32,
}

impl BundleRange {
    pub const FULL: BundleRange = BundleRange {
        lower: 0,
        upper: u32::MAX,
    };

    /// Parses `0x00000000_0x40000000`.
    pub fn parse(name: &str) -> Result<BundleRange, BundleError> {
        let bad = || BundleError::InvalidRange(name.to_string());
        let (lo, hi) = name.split_once('_').ok_or_else(bad)?;
        let lower = parse_hex(lo).ok_or_else(bad)?;
        let upper = parse_hex(hi).ok_or_else(bad)?;
        if lower >= upper {
            return Err(bad());
        }
        Ok(BundleRange { lower, upper })
    }

    /// Whether the range can be cut in two (Pulsar: `hi - lo > 1`).
    pub fn can_split(&self) -> bool {
        self.upper - self.lower > 1
    }
}

impl fmt::Display for BundleRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08x}_0x{:08x}", self.lower, self.upper)
    }
}

/// Why bundle data or a bundle name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("invalid bundle range {0:?}: expected 0x%08x_0x%08x with lower < upper")]
    InvalidRange(String),
    #[error("invalid bundle boundaries: {0}")]
    InvalidBoundaries(String),
    #[error("bundle {0} is not a bundle of this namespace")]
    NoSuchBundle(String),
    #[error("bundle {0} is too small to split")]
    TooSmall(String),
}

fn parse_hex(s: &str) -> Option<u32> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

pub(super) fn parse_bundles(policies: &[u8]) -> Result<Bundles, BrokerError> {
    #[derive(serde::Deserialize)]
    struct Policies {
        #[serde(default)]
        bundles: Option<BundlesData>,
    }
    #[derive(serde::Deserialize)]
    struct BundlesData {
        boundaries: Vec<String>,
    }
    let parsed: Policies = serde_json::from_slice(policies)
        .map_err(|e| BrokerError::Metadata(format!("unreadable namespace policies: {e}")))?;
    match parsed.bundles {
        None => Ok(Bundles::full()),
        Some(data) => {
            Bundles::from_hex(&data.boundaries).map_err(|e| BrokerError::Metadata(e.to_string()))
        }
    }
}

/// Each namespace's bundles, parsed, by the revision that last wrote its policies record (global:
/// a namespace deleted and created again starts its per-key version anew): every lookup and
/// every unload asks for a topic's bundle, and parsing the whole policies document each time
/// showed in profiles (100,000 topics unloading, 4 bundles: 400,000 parses).
#[derive(Debug, Default)]
pub(super) struct ParsedBundles(
    std::sync::Mutex<std::collections::HashMap<String, (u64, Bundles)>>,
);

impl ParsedBundles {
    /// The bundles in `value`, the policies record `key` as written at `mod_revision`.
    pub fn get(&self, key: &str, mod_revision: u64, value: &[u8]) -> Result<Bundles, BrokerError> {
        let mut parsed = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, bundles)) = parsed.get(key)
            && *at == mod_revision
        {
            return Ok(bundles.clone());
        }
        let bundles = parse_bundles(value)?;
        parsed.insert(key.to_string(), (mod_revision, bundles.clone()));
        Ok(bundles)
    }
}

/// The bundles of one namespace: sorted boundaries from 0 to `0xffffffff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundles {
    boundaries: Vec<u32>,
}

impl Bundles {
    /// One bundle over the whole range (a namespace without bundle data).
    pub fn full() -> Bundles {
        Bundles {
            boundaries: vec![0, u32::MAX],
        }
    }

    /// `n` equal ranges, as Pulsar creates a namespace (`PoliciesUtil.getBundles`).
    pub fn even(n: u32) -> Bundles {
        let n = u64::from(n.max(1));
        let step = (1u64 << 32) / n;
        let mut boundaries: Vec<u32> = (0..n).map(|i| (i * step) as u32).collect();
        boundaries.push(u32::MAX);
        Bundles { boundaries }
    }

    /// From the admin API's `boundaries` (hex strings).
    pub fn from_hex(boundaries: &[String]) -> Result<Bundles, BundleError> {
        let parsed = boundaries
            .iter()
            .map(|b| parse_hex(b).ok_or_else(|| BundleError::InvalidBoundaries(format!("{b:?}"))))
            .collect::<Result<Vec<u32>, _>>()?;
        Bundles::new(parsed)
    }

    pub fn new(boundaries: Vec<u32>) -> Result<Bundles, BundleError> {
        if boundaries.len() < 2 {
            return Err(BundleError::InvalidBoundaries(
                "need at least two boundaries".into(),
            ));
        }
        if boundaries[0] != 0 || boundaries[boundaries.len() - 1] != u32::MAX {
            return Err(BundleError::InvalidBoundaries(
                "must start at 0x00000000 and end at 0xffffffff".into(),
            ));
        }
        if boundaries.windows(2).any(|w| w[0] >= w[1]) {
            return Err(BundleError::InvalidBoundaries(
                "must be strictly increasing".into(),
            ));
        }
        Ok(Bundles { boundaries })
    }

    pub fn boundaries(&self) -> &[u32] {
        &self.boundaries
    }

    /// Boundaries as the admin API shows them.
    pub fn boundaries_hex(&self) -> Vec<String> {
        self.boundaries
            .iter()
            .map(|b| format!("0x{b:08x}"))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.boundaries.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn ranges(&self) -> impl Iterator<Item = BundleRange> + '_ {
        self.boundaries.windows(2).map(|w| BundleRange {
            lower: w[0],
            upper: w[1],
        })
    }

    /// The bundle holding `hash`.
    pub fn find(&self, hash: u32) -> BundleRange {
        // The index of the first boundary greater than `hash`; the last range is closed.
        let upper = self.boundaries.partition_point(|b| *b <= hash);
        let i = upper.clamp(1, self.boundaries.len() - 1);
        BundleRange {
            lower: self.boundaries[i - 1],
            upper: self.boundaries[i],
        }
    }

    /// The bundle of a topic (by its full name).
    pub fn of_topic(&self, full_name: &str) -> BundleRange {
        self.find(topic_hash(full_name))
    }

    pub fn contains(&self, range: BundleRange) -> bool {
        self.ranges().any(|r| r == range)
    }

    /// The boundaries after cutting `range` at its midpoint.
    pub fn split(&self, range: BundleRange) -> Result<Bundles, BundleError> {
        if !self.contains(range) {
            return Err(BundleError::NoSuchBundle(range.to_string()));
        }
        if !range.can_split() {
            return Err(BundleError::TooSmall(range.to_string()));
        }
        let mid = range.lower + (range.upper - range.lower) / 2;
        let mut boundaries = self.boundaries.clone();
        let at = boundaries.partition_point(|b| *b <= range.lower);
        boundaries.insert(at, mid);
        Bundles::new(boundaries)
    }
}

/// A bundle of a namespace: `tenant/ns` and a range.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BundleName {
    pub namespace: String,
    pub range: BundleRange,
}

impl BundleName {
    /// `tenant/ns/0x…_0x…`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.namespace, self.range)
    }

    /// Its ownership key, `/namespace/{tenant}/{ns}/{range}`.
    pub(super) fn key(&self) -> String {
        keys::bundle_owner(&self.namespace, &self.range.to_string())
    }

    /// Parses an ownership key back.
    pub(super) fn from_key(key: &str) -> Option<BundleName> {
        let rest = key.strip_prefix(keys::OWNERS_PREFIX)?;
        let (namespace, range) = rest.rsplit_once('/')?;
        Some(BundleName {
            namespace: namespace.to_string(),
            range: BundleRange::parse(range).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_zlib_crc32_of_the_full_name() {
        // Values from Python's zlib.crc32.
        assert_eq!(
            topic_hash("persistent://public/default/my-topic"),
            0x2bad45f7
        );
        assert_eq!(
            topic_hash("persistent://public/default/t-partition-3"),
            0xa4ac418e
        );
        assert_eq!(topic_hash("persistent://a/b/c"), 0x2d31c797);
    }

    #[test]
    fn four_even_bundles_match_pulsar() {
        let bundles = Bundles::even(4);
        assert_eq!(
            bundles.boundaries_hex(),
            [
                "0x00000000",
                "0x40000000",
                "0x80000000",
                "0xc0000000",
                "0xffffffff"
            ]
        );
        assert_eq!(bundles.len(), 4);
        let names: Vec<String> = bundles.ranges().map(|r| r.to_string()).collect();
        assert_eq!(names[0], "0x00000000_0x40000000");
        assert_eq!(names[3], "0xc0000000_0xffffffff");
    }

    #[test]
    fn ranges_are_half_open_except_the_last() {
        let bundles = Bundles::even(4);
        assert_eq!(bundles.find(0).to_string(), "0x00000000_0x40000000");
        assert_eq!(
            bundles.find(0x3fffffff).to_string(),
            "0x00000000_0x40000000"
        );
        assert_eq!(
            bundles.find(0x40000000).to_string(),
            "0x40000000_0x80000000"
        );
        assert_eq!(bundles.find(u32::MAX).to_string(), "0xc0000000_0xffffffff");
        assert_eq!(
            bundles
                .of_topic("persistent://public/default/my-topic")
                .to_string(),
            "0x00000000_0x40000000"
        );
        assert_eq!(Bundles::full().find(12345), BundleRange::FULL);
    }

    #[test]
    fn split_cuts_at_the_midpoint() {
        let bundles = Bundles::even(2);
        let first = bundles.ranges().next().expect("a range");
        let split = bundles.split(first).expect("splittable");
        assert_eq!(
            split.boundaries_hex(),
            ["0x00000000", "0x40000000", "0x80000000", "0xffffffff"]
        );
        let last = bundles.ranges().last().expect("a range");
        let split = bundles.split(last).expect("splittable");
        assert_eq!(split.boundaries_hex()[2], "0xbfffffff");
        assert!(matches!(
            bundles.split(BundleRange { lower: 1, upper: 2 }),
            Err(BundleError::NoSuchBundle(_))
        ));
        let tiny = Bundles::new(vec![0, 1, u32::MAX]).expect("valid");
        assert!(matches!(
            tiny.split(BundleRange { lower: 0, upper: 1 }),
            Err(BundleError::TooSmall(_))
        ));
    }

    #[test]
    fn bad_names_and_boundaries_are_refused() {
        for bad in ["", "0x1", "0x2_0x1", "0x_0x1", "zz_0x1", "0x000000001_0x2"] {
            assert!(BundleRange::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            BundleRange::parse("0x40000000_0x80000000").expect("valid"),
            BundleRange {
                lower: 0x4000_0000,
                upper: 0x8000_0000
            }
        );
        assert!(Bundles::new(vec![0]).is_err());
        assert!(Bundles::new(vec![1, u32::MAX]).is_err());
        assert!(Bundles::new(vec![0, 5, 5, u32::MAX]).is_err());
        assert!(Bundles::from_hex(&["0x0".into(), "nope".into()]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn every_hash_falls_in_exactly_one_range(n in 1u32..64, hash: u32) {
            let bundles = Bundles::even(n);
            let found = bundles.find(hash);
            let holding: Vec<BundleRange> = bundles
                .ranges()
                .filter(|r| r.lower <= hash && (hash < r.upper || (r.upper == u32::MAX && hash == u32::MAX)))
                .collect();
            proptest::prop_assert_eq!(holding, vec![found]);
        }
    }

    #[test]
    fn bundles_come_from_the_policies() {
        let with = br#"{"bundles":{"boundaries":["0x00000000","0x80000000","0xffffffff"],"numBundles":2}}"#;
        assert_eq!(parse_bundles(with).expect("valid").len(), 2);
        assert_eq!(parse_bundles(b"{}").expect("valid"), Bundles::full());
        assert!(parse_bundles(b"not json").is_err());
    }

    #[test]
    fn parsed_bundles_follow_the_record_revision() {
        let cache = ParsedBundles::default();
        let two = br#"{"bundles":{"boundaries":["0x00000000","0x80000000","0xffffffff"]}}"#;
        let four = br#"{"bundles":{"boundaries":["0x00000000","0x40000000","0x80000000","0xc0000000","0xffffffff"]}}"#;
        assert_eq!(cache.get("k", 1, two).expect("valid").len(), 2);
        // Same revision: the parsed copy, whatever the bytes.
        assert_eq!(cache.get("k", 1, four).expect("valid").len(), 2);
        assert_eq!(cache.get("k", 2, four).expect("valid").len(), 4);
        assert!(cache.get("k", 3, b"not json").is_err());
    }
}
