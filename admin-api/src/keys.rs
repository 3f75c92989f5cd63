//! Every metadata key the brokers and the admin API read or write, in one place. The layout
//! follows Pulsar's ZooKeeper paths, so an operator who knows those finds their way.
//!
//! | key | value | written by |
//! |---|---|---|
//! | `/admin/clusters/{cluster}` | cluster record | `cluster init`, admin REST |
//! | `/admin/policies/{tenant}` | tenant record | admin REST |
//! | `/admin/policies/{tenant}/{ns}` | namespace policies (bundle boundaries among them) | admin REST, bundle split |
//! | `/admin/partitioned-topics/{tenant}/{ns}/{domain}/{topic}` | `{"partitions": N}` | admin REST, auto-creation |
//! | `/managed-ledgers/{tenant}/{ns}/persistent/{topic}` | a topic's ledger list | the owning broker |
//! | `/managed-ledgers/{…topic}/cursors/{escaped subscription}` | a cursor | the owning broker |
//! | `/schemas/{tenant}/{ns}/{topic}` | schema history | brokers |
//! | `/loadbalance/brokers/{broker id}` | live broker (ephemeral) | each broker |
//! | `/namespace/{tenant}/{ns}/{bundle range}` | bundle owner (ephemeral) | the owning broker |
//!
//! The storage tier's own keys (`/ledgers/`, `/bookies/`, `/autorecovery/`) are the bookie
//! crate's: `magnetar_bookie::ledger::LEDGERS_PREFIX`, `registry`, `autorecovery`.

use magnetar_protocol::topic::TopicName;

use crate::names::NamespaceName;

/// Parent of the cluster records.
pub const CLUSTERS: &str = "/admin/clusters";
/// Parent of tenant records, and of namespace policies one level down.
pub const POLICIES: &str = "/admin/policies";
/// [`POLICIES`] with its slash: `{POLICIES_PREFIX}{tenant}/{ns}` is a namespace's policies.
pub const POLICIES_PREFIX: &str = "/admin/policies/";
/// Topic-level policies: `{TOPIC_POLICIES_PREFIX}{tenant}/{ns}/{domain}/{topic}`.
pub const TOPIC_POLICIES_PREFIX: &str = "/admin/topic-policies/";
/// Parent of partitioned-topic records.
pub const PARTITIONED_TOPICS: &str = "/admin/partitioned-topics";
/// Parent of managed ledgers (one per persistent topic or partition).
pub const MANAGED_LEDGERS_PREFIX: &str = "/managed-ledgers/";
/// Live brokers: `{BROKERS_PREFIX}{broker id}`.
pub const BROKERS_PREFIX: &str = "/loadbalance/brokers/";
/// Bundle owners: `{OWNERS_PREFIX}{tenant}/{ns}/{range}`.
pub const OWNERS_PREFIX: &str = "/namespace/";

/// A cluster record.
pub fn cluster(cluster: &str) -> String {
    format!("{CLUSTERS}/{cluster}")
}

/// A tenant record.
pub fn tenant(tenant: &str) -> String {
    format!("{POLICIES_PREFIX}{tenant}")
}

/// A namespace's policies.
pub fn namespace(ns: &NamespaceName) -> String {
    namespace_policies(&ns.tenant, &ns.namespace)
}

/// A namespace's policies, from its two name parts.
pub fn namespace_policies(tenant: &str, namespace: &str) -> String {
    format!("{POLICIES_PREFIX}{tenant}/{namespace}")
}

/// A topic's own policies; a partition's are its partitioned topic's.
pub fn topic_policies(topic: &TopicName) -> String {
    let base = topic.partitioned_topic();
    format!(
        "{TOPIC_POLICIES_PREFIX}{}/{}/{}/{}",
        base.tenant(),
        base.namespace_local(),
        base.domain().as_str(),
        base.local_name()
    )
}

/// A partitioned topic's record; `topic` may be one of its partitions.
pub fn partitioned_topic(topic: &TopicName) -> String {
    let base = topic.partitioned_topic();
    format!(
        "{}/{}",
        partitioned_topics(
            base.tenant(),
            base.namespace_local(),
            base.domain().as_str()
        ),
        base.local_name()
    )
}

/// Parent of a namespace's partitioned topics of one domain (`persistent`, `non-persistent`).
pub fn partitioned_topics(tenant: &str, namespace: &str, domain: &str) -> String {
    format!("{PARTITIONED_TOPICS}/{tenant}/{namespace}/{domain}")
}

/// Everything under a namespace's partitioned topics, with the trailing slash.
pub fn partitioned_topics_prefix(ns: &NamespaceName) -> String {
    format!("{PARTITIONED_TOPICS}/{}/{}/", ns.tenant, ns.namespace)
}

/// A managed ledger, by its name (`tenant/ns/persistent/topic`).
pub fn managed_ledger(name: &str) -> String {
    format!("{MANAGED_LEDGERS_PREFIX}{name}")
}

/// Everything under a namespace's managed ledgers, with the trailing slash.
pub fn managed_ledgers_prefix(ns: &NamespaceName) -> String {
    format!("{MANAGED_LEDGERS_PREFIX}{}/{}/", ns.tenant, ns.namespace)
}

/// Parent of a namespace's persistent topics' managed ledgers (`namespace` as `tenant/ns`).
pub fn persistent_managed_ledgers(namespace: &str) -> String {
    format!("{MANAGED_LEDGERS_PREFIX}{namespace}/persistent")
}

/// Parent of a managed ledger's cursors, with the trailing slash.
pub fn cursors_prefix(managed_ledger: &str) -> String {
    format!("{MANAGED_LEDGERS_PREFIX}{managed_ledger}/cursors/")
}

/// A cursor; the subscription name is escaped into one key segment ([`escape_segment`]).
pub fn cursor(managed_ledger: &str, cursor: &str) -> String {
    format!(
        "{}{}",
        cursors_prefix(managed_ledger),
        escape_segment(cursor)
    )
}

/// A topic's schema history; `topic` may be one of its partitions.
pub fn schema(topic: &TopicName) -> String {
    let base = topic.partitioned_topic();
    format!(
        "/schemas/{}/{}/{}",
        base.tenant(),
        base.namespace_local(),
        base.local_name()
    )
}

/// A live broker's registration.
pub fn broker(broker_id: &str) -> String {
    format!("{BROKERS_PREFIX}{broker_id}")
}

/// A bundle's owner; `namespace` as `tenant/ns`, `range` as `0x…_0x…`.
pub fn bundle_owner(namespace: &str, range: &str) -> String {
    format!("{OWNERS_PREFIX}{namespace}/{range}")
}

/// Percent-escapes what may not appear in one key segment (`/`, `%`, control characters).
pub fn escape_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for c in segment.chars() {
        if c == '/' || c == '%' || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_pulsars_layout() {
        let partition =
            TopicName::parse("persistent://acme/orders/created-partition-3").expect("a topic name");
        assert_eq!(
            partitioned_topic(&partition),
            "/admin/partitioned-topics/acme/orders/persistent/created"
        );
        assert_eq!(schema(&partition), "/schemas/acme/orders/created");
        let ns = NamespaceName {
            tenant: "acme".into(),
            namespace: "orders".into(),
        };
        assert_eq!(namespace(&ns), "/admin/policies/acme/orders");
        assert_eq!(tenant("acme"), "/admin/policies/acme");
        assert_eq!(cluster("east"), "/admin/clusters/east");
        assert_eq!(
            cursor("acme/orders/persistent/created", "a/b%"),
            "/managed-ledgers/acme/orders/persistent/created/cursors/a%2Fb%25"
        );
        assert_eq!(
            persistent_managed_ledgers("acme/orders"),
            "/managed-ledgers/acme/orders/persistent"
        );
        assert_eq!(
            bundle_owner("acme/orders", "0x00000000_0x40000000"),
            "/namespace/acme/orders/0x00000000_0x40000000"
        );
        assert_eq!(
            broker("10.0.0.1:8080"),
            "/loadbalance/brokers/10.0.0.1:8080"
        );
    }
}
