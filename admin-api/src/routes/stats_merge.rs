//! Partitioned-topic stats: each partition's stats added into one total.

use serde_json::Value;

/// Adds one partition's stats to the total, as Pulsar's `PartitionedTopicStats` does: counters
/// and rates sum, delays and times take the maximum, `connected` holds only if every partition's
/// does, lists (publishers, consumers) are joined, and the maps (subscriptions, replication)
/// merge key by key.
pub(super) fn merge_stats(total: &mut Value, part: &Value) {
    let (Value::Object(total), Value::Object(part)) = (total, part) else {
        return;
    };
    for (key, value) in part {
        let Some(current) = total.get_mut(key) else {
            total.insert(key.clone(), value.clone());
            continue;
        };
        match (current, value) {
            (current @ Value::Number(_), Value::Number(n)) => {
                let (a, b) = (current.as_f64().unwrap_or(0.0), n.as_f64().unwrap_or(0.0));
                let latest =
                    key.contains("Delay") || key.ends_with("Time") || key.ends_with("Since");
                let merged = if latest { a.max(b) } else { a + b };
                *current = number(merged, current.is_f64() || n.is_f64());
            }
            (Value::Bool(a), Value::Bool(b)) => *a &= *b,
            (Value::Array(a), Value::Array(b)) => a.extend(b.iter().cloned()),
            (current @ Value::Object(_), Value::Object(_)) => merge_stats(current, value),
            (current @ Value::Null, other) => *current = other.clone(),
            _ => {} // strings (type, status): the first partition's
        }
    }
}

fn number(n: f64, float: bool) -> Value {
    if float {
        serde_json::json!(n)
    } else {
        serde_json::json!(n as i64)
    }
}

#[cfg(test)]
mod stats_tests {
    use super::*;
    use serde_json::Map;

    #[test]
    fn partitions_merge_like_pulsars_partitioned_stats() {
        let mut total = Value::Object(Map::new());
        let part = |out: u64, delay: f64, connected: bool, error: Value| {
            serde_json::json!({
                "msgInCounter": out,
                "publishers": [{"producerName": format!("p{out}")}],
                "subscriptions": {"s": {"type": "Shared", "msgBacklog": out}},
                "replication": {"us": {
                    "msgOutCounter": out, "replicationDelayInSeconds": delay,
                    "connected": connected, "lastError": error}},
            })
        };
        merge_stats(&mut total, &part(10, 1.5, true, Value::Null));
        merge_stats(&mut total, &part(5, 0.5, false, "refused".into()));
        assert_eq!(total["msgInCounter"], 15);
        assert_eq!(total["publishers"].as_array().map(Vec::len), Some(2));
        assert_eq!(total["subscriptions"]["s"]["msgBacklog"], 15);
        assert_eq!(total["subscriptions"]["s"]["type"], "Shared");
        let us = &total["replication"]["us"];
        assert_eq!(us["msgOutCounter"], 15);
        assert_eq!(us["replicationDelayInSeconds"], 1.5);
        assert_eq!(us["connected"], false);
        assert_eq!(us["lastError"], "refused");
    }
}
