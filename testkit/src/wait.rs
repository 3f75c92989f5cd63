//! Waiting on conditions with a deadline: the helpers live in `magnetar_metadata::testing`
//! (the bottom of the crate graph, so the metadata crate's own tests use them too).

pub use magnetar_metadata::testing::{try_wait_for, wait_for, wait_until};
