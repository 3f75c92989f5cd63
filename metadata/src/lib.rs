//! Magnetar's metadata service: a replicated key-value store on openraft, what ZooKeeper is to
//! Pulsar. Not built yet (issue 3).
