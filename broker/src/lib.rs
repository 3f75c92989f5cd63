//! Magnetar's broker: Pulsar protocol server, managed ledgers, subscriptions. Not built yet (issue 5).
