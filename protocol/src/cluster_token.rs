//! The cluster token: the shared secret every internal connection presents first — a broker or
//! a tool to a bookie or a metadata node, one metadata node to another — so that the metadata
//! service and the bookies serve only members of their cluster. A peer that does not present
//! it gets nothing but the refusal.
//!
//! A setting names it as `file:///path` (or `file:/path`; the file's content, trimmed) or gives
//! it literally. It must be at least [`MIN_LEN`] bytes. It is compared in constant time and
//! never printed (`Debug` shows `ClusterToken(***)`).

use std::fmt;
use std::sync::Arc;

use rand::RngCore;

/// The shortest token accepted.
pub const MIN_LEN: usize = 16;

#[derive(Clone, PartialEq, Eq)]
pub struct ClusterToken(Arc<str>);

/// For `#[serde(deserialize_with = "…")]` on an optional `cluster_token` setting of a TOML
/// configuration: `file:///path` or the token itself, checked as [`ClusterToken::from_setting`].
pub fn deserialize_setting<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<ClusterToken>, D::Error> {
    use serde::Deserialize;
    Option::<String>::deserialize(deserializer)?
        .map(|setting| ClusterToken::from_setting(&setting))
        .transpose()
        .map_err(serde::de::Error::custom)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterTokenError {
    #[error("reading the cluster token from {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("the cluster token must be at least {MIN_LEN} bytes (it has {0})")]
    TooShort(usize),
}

impl fmt::Debug for ClusterToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterToken(***)")
    }
}

impl ClusterToken {
    pub fn new(token: impl Into<String>) -> Result<ClusterToken, ClusterTokenError> {
        let token: String = token.into();
        if token.len() < MIN_LEN {
            return Err(ClusterTokenError::TooShort(token.len()));
        }
        Ok(ClusterToken(token.into()))
    }

    /// From a setting: `file:///path`, `file:/path`, or the token itself.
    pub fn from_setting(value: &str) -> Result<ClusterToken, ClusterTokenError> {
        let path = value
            .strip_prefix("file://")
            .or_else(|| value.strip_prefix("file:"));
        match path {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| ClusterTokenError::Unreadable {
                        path: path.to_string(),
                        reason: e.to_string(),
                    })?;
                ClusterToken::new(text.trim())
            }
            None => ClusterToken::new(value.trim()),
        }
    }

    /// A random token (64 hex digits), e.g. for the processes of one standalone.
    pub fn generate() -> ClusterToken {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        ClusterToken(hex.into())
    }

    /// The token as it travels (only ever sent on the connection it authenticates).
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Whether `presented` is this token, in time independent of where they differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        if presented.len() != expected.len() {
            return false;
        }
        expected
            .iter()
            .zip(presented)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_themselves_and_never_print() {
        let token = ClusterToken::new("0123456789abcdef-secret").expect("token");
        assert!(token.matches(b"0123456789abcdef-secret"));
        assert!(!token.matches(b"0123456789abcdef-secreT"));
        assert!(!token.matches(b"0123456789abcdef"));
        assert!(!token.matches(b""));
        assert_eq!(format!("{token:?}"), "ClusterToken(***)");
        assert_eq!(
            ClusterToken::new("short"),
            Err(ClusterTokenError::TooShort(5))
        );
        let generated = ClusterToken::generate();
        assert_eq!(generated.as_bytes().len(), 64);
        assert_ne!(generated, ClusterToken::generate());
    }

    #[test]
    fn settings_name_a_file_or_the_token() {
        let dir = std::env::temp_dir().join(format!("cluster-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("token");
        std::fs::write(&path, "from-a-file-0123456789\n").expect("write");
        let url = format!("file://{}", path.display());
        let token = ClusterToken::from_setting(&url).expect("file token");
        assert!(token.matches(b"from-a-file-0123456789"));
        assert!(ClusterToken::from_setting("literal-token-0123456789").is_ok());
        assert!(matches!(
            ClusterToken::from_setting("file:///does/not/exist"),
            Err(ClusterTokenError::Unreadable { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
