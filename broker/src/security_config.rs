//! Auth settings as `magnetar standalone` takes them: an optional TOML file (an `[auth]` table,
//! or the `AuthConfig` fields at the top level) with command-line flags on top. Giving a token
//! key on the command line is the "one setting" that turns authentication and authorization on.

use std::path::{Path, PathBuf};

use magnetar_auth::AuthConfig;

/// The auth flags of `magnetar standalone`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthFlags {
    /// TOML file with the `[auth]` settings (docs/auth.md).
    pub config_file: Option<PathBuf>,
    /// `token.secret_key` (a key URL); turns authentication and authorization on.
    pub token_secret_key: Option<String>,
    /// `token.public_key` (a key URL); turns authentication and authorization on.
    pub token_public_key: Option<String>,
    /// Added to `superuser_roles`.
    pub superuser_roles: Vec<String>,
}

impl AuthFlags {
    /// The file's settings (defaults without a file) with the flags applied.
    pub fn resolve(&self) -> anyhow::Result<AuthConfig> {
        let mut config = match &self.config_file {
            Some(path) => read_auth_file(path)?,
            None => AuthConfig::default(),
        };
        if self.token_secret_key.is_some() || self.token_public_key.is_some() {
            config.authentication_enabled = true;
            config.authorization_enabled = true;
            config.token.secret_key = self.token_secret_key.clone();
            config.token.public_key = self.token_public_key.clone();
        }
        for role in &self.superuser_roles {
            if !config.superuser_roles.contains(role) {
                config.superuser_roles.push(role.clone());
            }
        }
        // Fail now, with the file named, rather than at broker start.
        config
            .authenticator()
            .map_err(|e| anyhow::anyhow!("auth settings: {e}"))?;
        if config.authorization_enabled && config.superuser_roles.is_empty() {
            tracing::warn!(
                "authorization is on but no superuser role is set: nobody can administer tenants"
            );
        }
        Ok(config)
    }
}

/// Reads `[auth]` (or the fields at the top level) from a TOML file.
pub fn read_auth_file(path: &Path) -> anyhow::Result<AuthConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    parse_auth_toml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub fn parse_auth_toml(text: &str) -> anyhow::Result<AuthConfig> {
    let value: toml::Table = toml::from_str(text)?;
    let table = match value.get("auth") {
        Some(toml::Value::Table(auth)) if value.len() == 1 => auth.clone(),
        Some(_) => anyhow::bail!("expected only an [auth] table"),
        None => value,
    };
    Ok(toml::Value::Table(table).try_into()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_file_with_or_without_a_section_and_flags_on_top() -> anyhow::Result<()> {
        let sectioned = parse_auth_toml(
            "[auth]\nauthentication_enabled = true\nsuperuser_roles = [\"admin\"]\n\
             [auth.token]\nsecret_key = \"data:;base64,AAAA\"\n",
        )?;
        assert!(sectioned.authentication_enabled);
        assert_eq!(sectioned.superuser_roles, ["admin"]);
        let flat =
            parse_auth_toml("authentication_enabled = true\n[token]\nauth_claim = \"role\"\n")?;
        assert_eq!(flat.token.auth_claim, "role");
        assert!(parse_auth_toml("[auth]\nbogus = 1\n").is_err());

        let flags = AuthFlags {
            token_secret_key: Some(
                "data:;base64,MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into(),
            ),
            superuser_roles: vec!["admin".into()],
            ..AuthFlags::default()
        };
        let config = flags.resolve()?;
        assert!(config.authentication_enabled && config.authorization_enabled);
        assert_eq!(config.superuser_roles, ["admin"]);
        assert!(!AuthFlags::default().resolve()?.authentication_enabled);
        Ok(())
    }

    #[test]
    fn sample_in_deploy_parses() -> anyhow::Result<()> {
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/auth.toml");
        let config = read_auth_file(&sample)?;
        assert!(config.authentication_enabled && config.authorization_enabled);
        assert_eq!(config.superuser_roles, ["admin"]);
        assert!(config.token.secret_key.is_some());
        Ok(())
    }
}
