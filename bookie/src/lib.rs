//! Magnetar's storage node (journal + ledger storage) and the ledger client brokers use.
//! Not built yet (issue 4).
