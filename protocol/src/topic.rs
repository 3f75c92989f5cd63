//! Topic names, parsed and normalised as Pulsar's `TopicName` does:
//!
//! - `x` → `persistent://public/default/x`; `t/ns/x` → `persistent://t/ns/x`; any other count of
//!   slashes without a scheme is invalid;
//! - `persistent://t/ns/x` and `non-persistent://t/ns/x`; the old cluster-qualified form
//!   `persistent://t/cluster/ns/x` (Pulsar's V1 names, for namespaces Magnetar never has) is
//!   refused, so a local name never holds a `/` and no name can alias another's storage;
//! - `x-partition-N` is partition N of the partitioned topic `x` (N in canonical decimal, `x`
//!   non-empty and not a partition name itself: one name per partition).

use std::fmt;
use std::str::FromStr;

const PARTITION_SUFFIX: &str = "-partition-";
const DEFAULT_TENANT: &str = "public";
const DEFAULT_NAMESPACE: &str = "default";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TopicDomain {
    Persistent,
    NonPersistent,
}

impl TopicDomain {
    pub fn as_str(self) -> &'static str {
        match self {
            TopicDomain::Persistent => "persistent",
            TopicDomain::NonPersistent => "non-persistent",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid topic name '{name}': {reason}")]
pub struct TopicNameError {
    pub name: String,
    pub reason: &'static str,
}

/// A fully qualified topic name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName {
    domain: TopicDomain,
    tenant: String,
    namespace: String,
    local_name: String,
    partition: Option<u32>,
}

impl TopicName {
    pub fn parse(name: &str) -> Result<TopicName, TopicNameError> {
        let err = |reason| TopicNameError {
            name: name.to_string(),
            reason,
        };
        let (domain, rest) = match name.split_once("://") {
            Some(("persistent", rest)) => (TopicDomain::Persistent, rest.to_string()),
            Some(("non-persistent", rest)) => (TopicDomain::NonPersistent, rest.to_string()),
            Some(_) => return Err(err("the domain must be 'persistent' or 'non-persistent'")),
            None => match name.matches('/').count() {
                0 => (
                    TopicDomain::Persistent,
                    format!("{DEFAULT_TENANT}/{DEFAULT_NAMESPACE}/{name}"),
                ),
                2 => (TopicDomain::Persistent, name.to_string()),
                _ => {
                    return Err(err(
                        "a short name must be '<topic>' or '<tenant>/<namespace>/<topic>'",
                    ));
                }
            },
        };
        let parts: Vec<&str> = rest.splitn(4, '/').collect();
        let (tenant, namespace, local_name) = match parts[..] {
            [tenant, namespace, local] => (tenant, namespace, local),
            [_, _, _, _] => {
                return Err(err(
                    "cluster-qualified (four-part) names are not supported; use '<domain>://<tenant>/<namespace>/<topic>' (a topic name holds no '/')",
                ));
            }
            _ => return Err(err("expected '<domain>://<tenant>/<namespace>/<topic>'")),
        };
        if tenant.is_empty() || namespace.is_empty() {
            return Err(err("tenant and namespace must not be empty"));
        }
        if !is_valid_entity_name(tenant) || !is_valid_entity_name(namespace) {
            return Err(err(
                "tenant and namespace may only hold letters, digits and _ - = : .",
            ));
        }
        if local_name.is_empty() {
            return Err(err("the topic's local name must not be empty"));
        }
        if !is_valid_local_name(local_name) {
            return Err(err(
                "a topic name may not hold whitespace, control characters or any of * ? \" ' < > | \\ # % & { } [ ] ^ `",
            ));
        }
        Ok(TopicName {
            domain,
            tenant: tenant.to_string(),
            namespace: namespace.to_string(),
            local_name: local_name.to_string(),
            partition: partition_index(local_name),
        })
    }

    pub fn domain(&self) -> TopicDomain {
        self.domain
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// `tenant/namespace`.
    pub fn namespace(&self) -> String {
        format!("{}/{}", self.tenant, self.namespace)
    }

    /// The namespace's own name, without the tenant.
    pub fn namespace_local(&self) -> &str {
        &self.namespace
    }

    /// The last part of the name, partition suffix included.
    pub fn local_name(&self) -> &str {
        &self.local_name
    }

    pub fn is_persistent(&self) -> bool {
        self.domain == TopicDomain::Persistent
    }

    /// The partition index if this is `<topic>-partition-<N>`.
    pub fn partition(&self) -> Option<u32> {
        self.partition
    }

    /// The partitioned topic this partition belongs to, or the name itself.
    pub fn partitioned_topic(&self) -> TopicName {
        match self.partition {
            None => self.clone(),
            Some(_) => {
                let at = self
                    .local_name
                    .rfind(PARTITION_SUFFIX)
                    .unwrap_or(self.local_name.len());
                TopicName {
                    local_name: self.local_name[..at].to_string(),
                    partition: None,
                    ..self.clone()
                }
            }
        }
    }

    /// Partition `index` of this (partitioned) topic.
    pub fn with_partition(&self, index: u32) -> TopicName {
        let base = self.partitioned_topic();
        TopicName {
            local_name: format!("{}{PARTITION_SUFFIX}{index}", base.local_name),
            partition: Some(index),
            ..base
        }
    }
}

/// Pulsar's `NamedEntity.checkName`: `[-=:.\w]+`.
fn is_valid_entity_name(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '=' | ':' | '.'))
}

/// A topic's local name: anything printable but characters that break URLs, shells, regular
/// expressions and file names. Pulsar accepts them (apache/pulsar#20231) and then cannot
/// address such a topic everywhere; Magnetar refuses them up front.
fn is_valid_local_name(name: &str) -> bool {
    name.chars().all(|c| {
        !c.is_control()
            && !c.is_whitespace()
            && !matches!(
                c,
                '*' | '?'
                    | '"'
                    | '\''
                    | '<'
                    | '>'
                    | '|'
                    | '\\'
                    | '#'
                    | '%'
                    | '&'
                    | '{'
                    | '}'
                    | '['
                    | ']'
                    | '^'
                    | '`'
            )
    })
}

/// The partition a local name is: `<base>-partition-<N>` with a non-empty base that is not a
/// partition name itself and `N` in canonical decimal (no leading zero, fits a u32), so that
/// every partition has exactly one name and its partitioned topic is a valid name. Anything
/// else (`-partition-3`, `x-partition-03`, `x-partition-1-partition-2`) is a plain topic.
fn partition_index(local_name: &str) -> Option<u32> {
    // A name is a partition when the chain of `-partition-N` suffixes that can be stripped from
    // its end is odd: its base is then not a partition name (its own chain is even). A loop, not
    // a recursion: a name is as long as a frame allows and may hold that many suffixes.
    let mut name = local_name;
    let mut first = None;
    let mut chain = 0usize;
    while let Some((base, index)) = strip_partition_suffix(name) {
        first.get_or_insert(index);
        chain += 1;
        name = base;
    }
    if chain % 2 == 1 { first } else { None }
}

/// `<base>-partition-<N>` with a non-empty base and `N` in canonical decimal fitting a u32.
fn strip_partition_suffix(name: &str) -> Option<(&str, u32)> {
    let at = name.rfind(PARTITION_SUFFIX)?;
    let base = &name[..at];
    let digits = &name[at + PARTITION_SUFFIX.len()..];
    if base.is_empty()
        || digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    Some((base, digits.parse().ok()?))
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}/{}",
            self.domain.as_str(),
            self.namespace(),
            self.local_name
        )
    }
}

impl FromStr for TopicName {
    type Err = TopicNameError;

    fn from_str(s: &str) -> Result<TopicName, TopicNameError> {
        TopicName::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(name: &str) -> String {
        TopicName::parse(name).expect(name).to_string()
    }

    #[test]
    fn normalises_short_names() {
        assert_eq!(full("x"), "persistent://public/default/x");
        assert_eq!(full("t/ns/x"), "persistent://t/ns/x");
        assert_eq!(full("persistent://t/ns/x"), "persistent://t/ns/x");
        assert_eq!(full("non-persistent://t/ns/x"), "non-persistent://t/ns/x");
    }

    /// A cluster-qualified name would alias `t/ns/x`'s storage (and a local name with `/` in it
    /// another topic's cursor keys): refused.
    #[test]
    fn cluster_qualified_names_are_refused() {
        for name in [
            "persistent://public/c/default/x",
            "persistent://prop/us-west/ns/a/b",
            "persistent://t/ns/x/cursors/sub",
            "non-persistent://t/c/ns/x",
        ] {
            let e = TopicName::parse(name).expect_err(name);
            assert!(e.reason.contains("four-part"), "{name}: {e}");
        }
    }

    #[test]
    fn partitions() {
        let name = TopicName::parse("t/ns/orders-partition-3").expect("partition");
        assert_eq!(name.partition(), Some(3));
        assert_eq!(
            name.partitioned_topic().to_string(),
            "persistent://t/ns/orders"
        );
        assert_eq!(
            name.partitioned_topic().with_partition(0).to_string(),
            "persistent://t/ns/orders-partition-0"
        );
        assert_eq!(
            TopicName::parse("a-partition-x").expect("name").partition(),
            None
        );
        assert_eq!(
            TopicName::parse("a-partition-").expect("name").partition(),
            None
        );
    }

    /// Found by `magnetar-fuzz topic_name`: `x-partition-03` was partition 3 of `x` under a
    /// second name (another managed ledger than `x-partition-3`'s, which consumers of `x` read).
    #[test]
    fn only_the_canonical_partition_suffix_names_a_partition() {
        for name in ["t/ns/orders-partition-03", "t/ns/orders-partition-00"] {
            let topic = TopicName::parse(name).expect(name);
            assert_eq!(topic.partition(), None, "{name}");
            assert_eq!(topic.partitioned_topic(), topic, "{name}");
        }
        let three = TopicName::parse("t/ns/orders-partition-3").expect("partition 3");
        assert_eq!(three.partition(), Some(3));
        assert_eq!(three.partitioned_topic().with_partition(3), three);
        let zero = TopicName::parse("t/ns/orders-partition-0").expect("partition 0");
        assert_eq!(zero.partition(), Some(0));
        assert_eq!(
            TopicName::parse("t/ns/x-partition-4294967296")
                .expect("a plain name")
                .partition(),
            None
        );
    }

    /// Found by `magnetar-fuzz topic_name`: `-partition-0` was partition 0 of a topic with an
    /// empty name, which no name can address.
    #[test]
    fn a_partition_suffix_needs_a_base_name() {
        let topic = TopicName::parse("persistent://public/default/-partition-0").expect("plain");
        assert_eq!(topic.partition(), None);
        assert_eq!(topic.partitioned_topic().local_name(), "-partition-0");
    }

    /// A partition's partitioned topic must itself parse back to the same (unpartitioned) name:
    /// `x-partition-1-partition-2` is a plain topic, not partition 2 of partition 1.
    #[test]
    fn a_partition_name_is_never_the_base_of_another_partition() {
        let topic = TopicName::parse("t/ns/x-partition-1-partition-2").expect("plain");
        assert_eq!(topic.partition(), None);
        let base = TopicName::parse("t/ns/x-partition-1").expect("partition 1");
        assert_eq!(base.partition(), Some(1));
        assert_eq!(base.partitioned_topic().local_name(), "x");
    }

    #[test]
    fn a_name_made_of_partition_suffixes_does_not_exhaust_the_stack() {
        // Found in review: the check recursed once per suffix; a 5 MB name overflowed the stack.
        let odd = format!("t/ns/x{}", "-partition-0".repeat(400_001));
        assert_eq!(
            TopicName::parse(&odd).expect("a partition").partition(),
            Some(0)
        );
        let even = format!("t/ns/x{}", "-partition-7".repeat(400_000));
        assert_eq!(TopicName::parse(&even).expect("plain").partition(), None);
        let no_digits = format!("t/ns/x{}", "-partition-".repeat(400_000));
        assert_eq!(
            TopicName::parse(&no_digits).expect("plain").partition(),
            None
        );
    }

    #[test]
    fn accepts_the_names_people_use() {
        for good in [
            "orders.v1",
            "user_events",
            "a=b:c",
            "événements",
            "topic-partition-x",
            "a@b+c,d~e",
        ] {
            assert!(TopicName::parse(good).is_ok(), "{good:?} should be valid");
        }
    }

    #[test]
    fn rejects_invalid_names() {
        for bad in [
            "",
            "a/b",
            "a/b/c/d",
            "http://t/ns/x",
            "persistent://t/ns",
            "persistent://t/ns/",
            "persistent:///ns/x",
            "persistent://t//x",
            "persistent://t e/ns/x",
            "persistent://t/n$s/x",
            "persistent://t/ns/a*",
            "persistent://t/ns/a b",
            "persistent://t/ns/a\tb",
            "persistent://t/ns/a?b",
            "persistent://t/ns/\"quoted\"",
            "persistent://t/ns/50%",
            "persistent://t/ns/x#frag",
        ] {
            assert!(TopicName::parse(bad).is_err(), "{bad:?} should be invalid");
        }
    }
}
