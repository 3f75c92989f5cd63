//! `magnetar tokens`: create and check JWT tokens and their keys, like `pulsar tokens`.
//! Keys are written as Pulsar writes them (raw secret bytes, DER PKCS#8 private key, DER
//! X.509 public key) unless `--pem` or `--base64` is asked for, so the files work with
//! Pulsar brokers too.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine as _;
use clap::{Args, Subcommand};
use magnetar_auth::keys::{generate_key_pair, generate_secret, read_key_url};
use magnetar_auth::token::{header_algorithm, parse_algorithm};
use magnetar_auth::{SignKey, TokenSigner, TokenValidator, VerifyKey};

use crate::units::parse_duration_secs;

#[derive(Debug, Args)]
pub struct TokensArgs {
    #[command(subcommand)]
    pub command: TokensCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a random HMAC secret key.
    CreateSecretKey {
        /// Write the key to this file (raw bytes, or base64 with --base64) instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Base64-encode the key.
        #[arg(short, long)]
        base64: bool,
        /// HS256 (32 bytes), HS384 or HS512.
        #[arg(short = 'a', long, default_value = "HS256")]
        algorithm: String,
    },
    /// Create a key pair: RSA-2048 for RS256, P-256 for ES256.
    CreateKeyPair {
        #[arg(short = 'a', long, default_value = "RS256")]
        algorithm: String,
        #[arg(long)]
        output_private_key: PathBuf,
        #[arg(long)]
        output_public_key: PathBuf,
        /// Write PEM instead of DER.
        #[arg(long)]
        pem: bool,
    },
    /// Create a token whose `sub` is the role.
    Create {
        #[arg(short, long)]
        subject: String,
        /// Lifetime, e.g. 30m, 1h, 7d, 1y; without it the token never expires.
        #[arg(short, long, visible_alias = "expiry-time")]
        expiry: Option<String>,
        /// HMAC secret: data:;base64,<…>, file:///path, a file path, or base64.
        #[arg(
            long,
            conflicts_with = "private_key",
            required_unless_present = "private_key"
        )]
        secret_key: Option<String>,
        /// Private key (DER PKCS#8 or PEM): data:, file:, a file path, or base64.
        #[arg(long)]
        private_key: Option<String>,
        /// Signing algorithm; by default HS256 for a secret, RS256/ES256 by key type.
        #[arg(short = 'a', long, visible_alias = "signing-algorithm")]
        algorithm: Option<String>,
    },
    /// Check a token's signature and expiry and print its claims.
    Validate {
        token: String,
        #[arg(
            long,
            conflicts_with = "public_key",
            required_unless_present = "public_key"
        )]
        secret_key: Option<String>,
        /// Public key (DER X.509 or PEM): data:, file:, a file path, or base64.
        #[arg(long)]
        public_key: Option<String>,
        /// Accepted algorithm; by default HS256 for a secret, RS256/ES256 by key type.
        #[arg(short = 'a', long)]
        algorithm: Option<String>,
    },
    /// Print a token's header and claims without checking it.
    Show { token: String },
}

/// A key argument: a key URL, or a path to an existing file.
fn key_bytes(arg: &str) -> anyhow::Result<Vec<u8>> {
    if !arg.contains(':') && Path::new(arg).is_file() {
        return std::fs::read(arg).with_context(|| format!("reading key file {arg}"));
    }
    Ok(read_key_url(arg)?)
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Runs a tokens command, printing its output.
pub fn run(args: TokensArgs) -> anyhow::Result<()> {
    let out = execute(args)?;
    std::io::stdout().lock().write_all(&out)?;
    Ok(())
}

/// Runs a tokens command; returns what it prints.
pub fn execute(args: TokensArgs) -> anyhow::Result<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    match args.command {
        TokensCommand::CreateSecretKey {
            output,
            base64,
            algorithm,
        } => {
            let secret = generate_secret(parse_algorithm(&algorithm)?)?;
            let bytes = if base64 {
                base64::engine::general_purpose::STANDARD
                    .encode(&secret)
                    .into_bytes()
            } else {
                secret
            };
            match output {
                Some(path) => write_file(&path, &bytes)?,
                None => {
                    out.write_all(&bytes)?;
                    if base64 {
                        writeln!(out)?;
                    }
                }
            }
        }
        TokensCommand::CreateKeyPair {
            algorithm,
            output_private_key,
            output_public_key,
            pem,
        } => {
            let key = generate_key_pair(parse_algorithm(&algorithm)?)?;
            write_file(&output_private_key, &key.private_key_bytes(pem)?)?;
            let public = key
                .public_key_bytes(pem)?
                .context("a key pair has a public key")?;
            write_file(&output_public_key, &public)?;
        }
        TokensCommand::Create {
            subject,
            expiry,
            secret_key,
            private_key,
            algorithm,
        } => {
            let key = match (secret_key, private_key) {
                (Some(secret), _) => SignKey::Secret(key_bytes(&secret)?),
                (None, Some(private)) => SignKey::private_from_bytes(&key_bytes(&private)?)?,
                (None, None) => bail!("give --secret-key or --private-key"),
            };
            let alg = match algorithm {
                Some(name) => parse_algorithm(&name)?,
                None => key.default_algorithm(),
            };
            let expires_in = match expiry {
                Some(text) => match parse_duration_secs(&text).map_err(anyhow::Error::msg)? {
                    secs if secs > 0 => Some(secs.unsigned_abs()),
                    _ => bail!("--expiry must be positive"),
                },
                None => None,
            };
            writeln!(
                out,
                "{}",
                TokenSigner::new(&key, alg)?.create(&subject, expires_in)?
            )?;
        }
        TokensCommand::Validate {
            token,
            secret_key,
            public_key,
            algorithm,
        } => {
            let key = match (secret_key, public_key) {
                (Some(secret), _) => VerifyKey::Secret(key_bytes(&secret)?),
                (None, Some(public)) => VerifyKey::public_from_bytes(&key_bytes(&public)?)?,
                (None, None) => bail!("give --secret-key or --public-key"),
            };
            let alg = match algorithm {
                Some(name) => parse_algorithm(&name)?,
                None => key.default_algorithm(),
            };
            let checked = TokenValidator::new(&key, alg, "sub")?.validate(&token)?;
            writeln!(out, "{}", serde_json::to_string_pretty(&checked.claims)?)?;
        }
        TokensCommand::Show { token } => {
            let alg = header_algorithm(&token)?;
            let payload = token.split('.').nth(1).context("a JWT has three parts")?;
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload.trim_end_matches('='))
                .context("the payload is not base64url")?;
            let claims: serde_json::Value =
                serde_json::from_slice(&bytes).context("the payload is not JSON")?;
            writeln!(
                out,
                "alg: {alg}\n{}",
                serde_json::to_string_pretty(&claims)?
            )?;
        }
    }
    Ok(out)
}
