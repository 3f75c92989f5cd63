//! The Rust client library and CLI tools. Not built yet (issue 5).
