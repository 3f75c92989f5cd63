//! `topic_name`: `TopicName::parse` and the metadata keys brokers store a topic under.
//!
//! Input: up to 8 names separated by `\n`. Each name that parses must keep its normal form
//! (parsing its `Display` gives the same name); its partitioned topic must be a name that
//! parses to itself, and a partition must be exactly `with_partition(index)` of it (one name
//! per partition).
//! Across the names of one input, two different persistent topics must never share a managed
//! ledger key, and none may reach into another's key space: no topic's key may equal or start
//! another topic's cursor prefix, and the partitioned-topic record and schema keys must differ
//! exactly when the base topics (schemas: ignoring the domain, as Pulsar does) differ.

use magnetar_admin_api::keys;
use magnetar_broker::topic::managed_ledger_name;
use magnetar_protocol::TopicName;

use crate::engine::{Signal, Target};

#[derive(Debug)]
pub struct TopicNames;

impl Target for TopicNames {
    fn name(&self) -> &'static str {
        "topic_name"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        [
            "x\npersistent://public/default/x",
            "t/ns/x\npersistent://t/ns/x\nnon-persistent://t/ns/x",
            "persistent://t/ns/orders-partition-3\npersistent://t/ns/orders\nt/ns/orders-partition-03",
            "persistent://t/ns/a\npersistent://t/ns/a/cursors/s\npersistent://t/ns/a%2Fcursors",
            "persistent://t/c/ns/x\npersistent://t/ns/x",
            "persistent://a.b/c:d/e=f-partition-0\npersistent://a.b/c:d/e=f",
            "persistent://t/ns/x-partition-4294967296\npersistent://t/ns/x-partition-",
            "persistent://t/ns/ünï\npersistent://t/ns/..\npersistent://t/ns/.",
            "http://t/ns/x\n/\n//\n:///\npersistent:///ns/x\npersistent://t//x",
            "persistent://t/ns/x\tpersistent://t/ns/x\npersistent://t/ns/ x",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect()
    }

    fn run(&mut self, input: &[u8]) -> Signal {
        let text = String::from_utf8_lossy(input);
        let mut signal = Signal::new("topic_name");
        let mut topics = Vec::new();
        for name in text.split('\n').take(8) {
            match TopicName::parse(name) {
                Ok(topic) => {
                    check_one(&topic);
                    signal = signal.with(format!(
                        "{}/{}",
                        topic.domain().as_str(),
                        topic.partition().is_some()
                    ));
                    topics.push(topic);
                }
                Err(e) => signal = signal.with(e.reason),
            }
        }
        for (i, a) in topics.iter().enumerate() {
            for b in &topics[i + 1..] {
                check_pair(a, b);
            }
        }
        signal
    }
}

fn check_one(topic: &TopicName) {
    let again = TopicName::parse(&topic.to_string())
        .unwrap_or_else(|e| panic!("normal form of {topic} does not parse: {e}"));
    assert_eq!(
        &again, topic,
        "normal form of {topic} parses to another name"
    );
    let base = topic.partitioned_topic();
    assert_eq!(base.partition(), None, "the base of {topic} is a partition");
    let base_again = TopicName::parse(&base.to_string())
        .unwrap_or_else(|e| panic!("the partitioned topic of {topic} is not a name: {e}"));
    assert_eq!(
        base_again, base,
        "the partitioned topic of {topic} parses to another name"
    );
    if let Some(index) = topic.partition() {
        assert_eq!(
            &base.with_partition(index),
            topic,
            "{topic} is not partition {index} of its partitioned topic"
        );
    }
    let ml = managed_ledger_name(topic);
    assert!(
        keys::managed_ledger(&ml).starts_with(keys::MANAGED_LEDGERS_PREFIX),
        "{ml}"
    );
}

fn check_pair(a: &TopicName, b: &TopicName) {
    if a.is_persistent() && b.is_persistent() && a != b {
        let (ml_a, ml_b) = (managed_ledger_name(a), managed_ledger_name(b));
        let (key_a, key_b) = (keys::managed_ledger(&ml_a), keys::managed_ledger(&ml_b));
        assert_ne!(key_a, key_b, "{a} and {b} share a managed ledger");
        for (x, key_x, ml_y, y) in [(a, &key_a, &ml_b, b), (b, &key_b, &ml_a, a)] {
            let cursors = keys::cursors_prefix(ml_y);
            assert!(
                !key_x.starts_with(&cursors),
                "{x}'s managed ledger lies among {y}'s cursors"
            );
            assert!(
                !keys::cursors_prefix(&managed_ledger_name(x)).starts_with(&cursors),
                "{x}'s cursors lie among {y}'s cursors"
            );
        }
    }
    let same_base = a.partitioned_topic() == b.partitioned_topic();
    assert_eq!(
        keys::partitioned_topic(a) == keys::partitioned_topic(b),
        same_base,
        "partitioned-topic records of {a} and {b}"
    );
    let same_schema = a.tenant() == b.tenant()
        && a.namespace_local() == b.namespace_local()
        && a.partitioned_topic().local_name() == b.partitioned_topic().local_name();
    assert_eq!(
        keys::schema(a) == keys::schema(b),
        same_schema,
        "schema keys of {a} and {b}"
    );
}
