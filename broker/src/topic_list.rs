//! The topics of a namespace as pattern consumers see them (PIP-145): a pattern filter as Java's
//! `TopicList.filterTopics` applies it, the list hash clients compare, and the metadata keys that
//! name a namespace's topics.

use std::collections::BTreeSet;

use magnetar_admin_api::keys;
use magnetar_protocol::TopicName;
use regex::{Regex, RegexBuilder};

/// Longest pattern accepted (Pulsar's `subscriptionPatternMaxLength` is smaller, 50, and
/// configurable; a compiled pattern is bounded separately).
pub const MAX_PATTERN_LEN: usize = 1024;
/// Bound on a compiled pattern's size, so a hostile pattern cannot take the broker's memory.
const MAX_COMPILED_PATTERN: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("topics pattern is longer than {MAX_PATTERN_LEN} characters")]
    TooLong,
    #[error("invalid topics pattern: {0}")]
    Invalid(String),
}

/// A client's topics pattern, e.g. `persistent://public/default/orders-.*`.
#[derive(Debug, Clone)]
pub struct TopicPattern {
    regex: Regex,
}

impl TopicPattern {
    /// Compiles the pattern without its domain (`persistent://`, `non-persistent://`), anchored
    /// at both ends as Java's `Matcher.matches`.
    pub fn new(pattern: &str) -> Result<Self, PatternError> {
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong);
        }
        let body = remove_domain(pattern);
        let regex = RegexBuilder::new(&format!("^(?:{body})$"))
            .size_limit(MAX_COMPILED_PATTERN)
            .dfa_size_limit(MAX_COMPILED_PATTERN)
            .build()
            .map_err(|e| PatternError::Invalid(e.to_string()))?;
        Ok(Self { regex })
    }

    /// Whether a full topic name matches: its partitioned topic's name, without domain, is
    /// what the pattern sees (a partition matches when its topic does).
    pub fn matches(&self, topic: &str) -> bool {
        let Ok(name) = TopicName::parse(topic) else {
            return false;
        };
        let base = name.partitioned_topic().to_string();
        self.regex.is_match(remove_domain(&base))
    }

    pub fn filter(&self, topics: impl IntoIterator<Item = String>) -> Vec<String> {
        topics.into_iter().filter(|t| self.matches(t)).collect()
    }
}

fn remove_domain(name: &str) -> &str {
    name.split_once("://").map_or(name, |(_, rest)| rest)
}

/// Java's `TopicList.calculateHash`: CRC32C over the names in sorted order, printed as Guava's
/// `HashCode.toString()` does (the four bytes little-endian, in hex).
pub fn topics_hash<'a>(topics: impl IntoIterator<Item = &'a String>) -> String {
    let mut sorted: Vec<&String> = topics.into_iter().collect();
    sorted.sort();
    let crc = sorted
        .iter()
        .fold(0u32, |crc, t| crc32c::crc32c_append(crc, t.as_bytes()));
    crc.to_le_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The metadata prefix under which a namespace's persistent topics have their managed ledgers
/// (with the trailing slash).
pub fn managed_ledgers_prefix(namespace: &str) -> String {
    format!("{}/", keys::persistent_managed_ledgers(namespace))
}

/// Where brokers register the non-persistent topics they have loaded (ephemeral keys,
/// `{NON_PERSISTENT_REGISTRY}/{tenant}/{ns}/{local name}`).
pub const NON_PERSISTENT_REGISTRY: &str = "/loadbalance/non-persistent-topics";

/// The registry prefix of a namespace's non-persistent topics (with the trailing slash).
pub fn non_persistent_prefix(namespace: &str) -> String {
    format!("{NON_PERSISTENT_REGISTRY}/{namespace}/")
}

/// Whether a pattern names non-persistent topics (its domain; persistent when it has none).
pub fn is_non_persistent_pattern(pattern: &str) -> bool {
    pattern.starts_with("non-persistent://")
}

/// The topic a managed-ledger key under `prefix` names, if the key is the ledger list itself
/// (not one of its cursors).
pub fn topic_of_key(namespace: &str, prefix: &str, key: &str) -> Option<String> {
    let domain = match prefix.starts_with(NON_PERSISTENT_REGISTRY) {
        true => "non-persistent",
        false => "persistent",
    };
    let local = key.strip_prefix(prefix)?;
    (!local.is_empty() && !local.contains('/')).then(|| format!("{domain}://{namespace}/{local}"))
}

/// What a change in the namespace's topics means to a watcher holding `known`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Update {
    pub new_topics: Vec<String>,
    pub deleted_topics: Vec<String>,
}

impl Update {
    pub fn is_empty(&self) -> bool {
        self.new_topics.is_empty() && self.deleted_topics.is_empty()
    }

    /// Applies created (`true`) and deleted (`false`) topics to `known`, keeping those the
    /// pattern matches; a topic created and deleted (or deleted and created again) within one
    /// change is neither.
    pub fn apply(
        known: &mut BTreeSet<String>,
        pattern: &TopicPattern,
        changes: impl IntoIterator<Item = (String, bool)>,
    ) -> Update {
        let mut update = Update::default();
        for (topic, created) in changes {
            if !pattern.matches(&topic) {
                continue;
            }
            if created {
                if known.insert(topic.clone()) {
                    let before = update.deleted_topics.len();
                    update.deleted_topics.retain(|t| *t != topic);
                    if update.deleted_topics.len() == before {
                        update.new_topics.push(topic);
                    }
                }
            } else if known.remove(&topic) {
                let before = update.new_topics.len();
                update.new_topics.retain(|t| *t != topic);
                if update.new_topics.len() == before {
                    update.deleted_topics.push(topic);
                }
            }
        }
        update
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_without_domain_and_whole_names_only() {
        let p = TopicPattern::new("persistent://public/default/orders-.*").expect("valid");
        assert!(p.matches("persistent://public/default/orders-eu"));
        assert!(p.matches("persistent://public/default/orders-eu-partition-3"));
        assert!(!p.matches("persistent://public/default/old-orders-eu"));
        assert!(!p.matches("persistent://public/other/orders-eu"));
        let bare = TopicPattern::new("public/default/a|public/default/b").expect("valid");
        assert!(bare.matches("persistent://public/default/b"));
        assert!(!bare.matches("persistent://public/default/ab"));
        assert!(matches!(
            TopicPattern::new("persistent://public/default/(unclosed"),
            Err(PatternError::Invalid(_))
        ));
        assert!(matches!(
            TopicPattern::new(&"a".repeat(MAX_PATTERN_LEN + 1)),
            Err(PatternError::TooLong)
        ));
        // A pattern that would compile to a huge automaton is refused, not built.
        assert!(TopicPattern::new("public/default/(a{1000}){1000}").is_err());
    }

    #[test]
    fn the_hash_is_crc32c_of_the_sorted_names_in_guava_byte_order() {
        let topics = [
            "persistent://t/n/b".to_string(),
            "persistent://t/n/a".to_string(),
        ];
        let crc = crc32c::crc32c(b"persistent://t/n/apersistent://t/n/b");
        let expected: String = crc
            .to_le_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(topics_hash(&topics), expected);
        assert_eq!(topics_hash(&[]), "00000000");
    }

    #[test]
    fn keys_name_topics_but_not_their_cursors() {
        let prefix = managed_ledgers_prefix("t/n");
        let topic = topic_of_key("t/n", &prefix, &format!("{prefix}orders"));
        assert_eq!(topic.as_deref(), Some("persistent://t/n/orders"));
        assert_eq!(
            topic_of_key("t/n", &prefix, &format!("{prefix}orders/cursors/s")),
            None
        );
        assert_eq!(topic_of_key("t/n", &prefix, "/elsewhere/orders"), None);
    }

    #[test]
    fn updates_carry_only_matching_changes() {
        let p = TopicPattern::new("persistent://t/n/o-.*").expect("valid");
        let mut known = BTreeSet::from(["persistent://t/n/o-1".to_string()]);
        let update = Update::apply(
            &mut known,
            &p,
            [
                ("persistent://t/n/o-2".to_string(), true),
                ("persistent://t/n/x".to_string(), true),
                ("persistent://t/n/o-1".to_string(), false),
                ("persistent://t/n/o-1".to_string(), true),
                ("persistent://t/n/o-3".to_string(), true),
                ("persistent://t/n/o-3".to_string(), false),
            ],
        );
        assert_eq!(update.new_topics, vec!["persistent://t/n/o-2".to_string()]);
        assert!(update.deleted_topics.is_empty());
        assert_eq!(known.len(), 2);
    }
}
