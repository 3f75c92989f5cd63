//! Limits and key rules, checked before anything is proposed so that bad input never reaches
//! the log.

use crate::error::MetadataError;

/// Largest value a key may hold.
pub const MAX_VALUE_SIZE: usize = 1024 * 1024;
/// Longest key.
pub const MAX_KEY_SIZE: usize = 4096;
/// Most operations in one transaction.
pub const MAX_TXN_OPS: usize = 128;
/// Largest frame on the metadata wire: a full value plus room, or a snapshot chunk.
pub const MAX_FRAME_SIZE: usize = 8 * 1024 * 1024;

/// Keys are paths: `/a/b/c`, no empty segment, no trailing slash, no control characters.
pub fn validate_key(key: &str) -> Result<(), MetadataError> {
    let invalid =
        |reason: &str| MetadataError::InvalidArgument(format!("invalid key {key:?}: {reason}"));
    if key.len() > MAX_KEY_SIZE {
        return Err(MetadataError::TooLarge(format!(
            "key of {} bytes exceeds {MAX_KEY_SIZE}",
            key.len()
        )));
    }
    if !key.starts_with('/') || key.len() < 2 {
        return Err(invalid("must start with '/' and name something"));
    }
    if key.ends_with('/') {
        return Err(invalid("must not end with '/'"));
    }
    if key.contains("//") {
        return Err(invalid("must not contain an empty segment"));
    }
    if key.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters"));
    }
    Ok(())
}

/// Prefixes for list and watch: empty (everything) or a path start like `/a/` or `/a/b`.
pub fn validate_prefix(prefix: &str) -> Result<(), MetadataError> {
    if prefix.is_empty() {
        return Ok(());
    }
    if !prefix.starts_with('/')
        || prefix.len() > MAX_KEY_SIZE
        || prefix.chars().any(char::is_control)
    {
        return Err(MetadataError::InvalidArgument(format!(
            "invalid prefix {prefix:?}"
        )));
    }
    Ok(())
}

pub fn validate_value(key: &str, value: &[u8]) -> Result<(), MetadataError> {
    if value.len() > MAX_VALUE_SIZE {
        return Err(MetadataError::TooLarge(format!(
            "value of {} bytes for {key} exceeds the limit of {MAX_VALUE_SIZE} bytes",
            value.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_rules() {
        for good in ["/a", "/a/b", "/ledgers/00000001", "/x-y_z.w:1=2"] {
            validate_key(good).expect(good);
        }
        for bad in ["", "/", "a/b", "/a/", "/a//b", "/a\nb"] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            validate_key(&format!("/{}", "k".repeat(MAX_KEY_SIZE))),
            Err(MetadataError::TooLarge(_))
        ));
        assert!(validate_value("/k", &vec![0; MAX_VALUE_SIZE + 1]).is_err());
        validate_value("/k", &vec![0; MAX_VALUE_SIZE]).expect("at the limit");
    }
}
