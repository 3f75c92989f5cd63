//! `token`: JWT checks as brokers and the REST API run them (`magnetar_auth::token`), and key
//! URL and key parsing (`magnetar_auth::keys`).
//!
//! Input: `[u8 mode][rest]`, mode modulo 5:
//! - 0: `rest` as a token string to `TokenValidator::validate` (HS256, a fixed 32-byte key,
//!   role from `sub`, audience `magnetar` in `aud`); seeds are valid tokens, so mutants are
//!   mutated valid tokens;
//! - 1: `rest` as a token to `header_algorithm`;
//! - 2: `[u16 len][header JSON][claims JSON]` signed with the right key and validated, so that
//!   header and claims handling past the signature check is reached; a token accepted must name
//!   the role its `sub` claim holds;
//! - 3: `rest` as a key URL to `read_key_url` (only `data:` and bare base64: `file:` URLs read
//!   the local disk and are never fuzzed) and `parse_algorithm`;
//! - 4: `rest` as key bytes to `VerifyKey::public_from_bytes` and `SignKey::private_from_bytes`
//!   (DER and PEM, RSA and P-256).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use magnetar_auth::keys::{SignKey, VerifyKey, data_url, read_key_url};
use magnetar_auth::token::{TokenSigner, TokenValidator, header_algorithm, parse_algorithm};
use serde_json::{Map, Value, json};

use crate::engine::{Signal, Target};
use crate::input::{Input, InputBuilder};

const SECRET: &[u8] = b"magnetar-fuzz-0123456789abcdef!!";
const AUDIENCE: &str = "magnetar";

pub struct Token {
    validator: TokenValidator,
    signer: TokenSigner,
    key: EncodingKey,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("validator", &self.validator)
            .finish_non_exhaustive()
    }
}

impl Token {
    pub fn new() -> anyhow::Result<Token> {
        let validator =
            TokenValidator::new(&VerifyKey::Secret(SECRET.to_vec()), Algorithm::HS256, "sub")?
                .with_audience("aud", AUDIENCE);
        let signer = TokenSigner::new(&SignKey::Secret(SECRET.to_vec()), Algorithm::HS256)?;
        Ok(Token {
            validator,
            signer,
            key: EncodingKey::from_secret(SECRET),
        })
    }

    fn sign(&self, claims: Value) -> String {
        let Value::Object(claims) = claims else {
            return String::new();
        };
        self.signer.sign(&claims).unwrap_or_default()
    }

    /// A token over exactly these header and claims bytes, correctly signed.
    fn sign_raw(&self, header: &[u8], claims: &[u8]) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        match jsonwebtoken::crypto::sign(message.as_bytes(), &self.key, Algorithm::HS256) {
            Ok(signature) => format!("{message}.{signature}"),
            Err(_) => message,
        }
    }
}

impl Target for Token {
    fn name(&self) -> &'static str {
        "token"
    }

    fn seeds(&mut self) -> Vec<Vec<u8>> {
        let claims = [
            json!({"sub": "alice", "aud": AUDIENCE}),
            json!({"sub": "alice", "aud": ["x", AUDIENCE], "exp": 4_000_000_000u64}),
            json!({"sub": "bob", "aud": AUDIENCE, "exp": 1}),
            json!({"sub": "bob", "aud": AUDIENCE, "nbf": 4_000_000_000u64}),
            json!({"sub": "", "aud": AUDIENCE}),
            json!({"sub": 7, "aud": AUDIENCE}),
            json!({"aud": "other", "sub": "carol"}),
            json!({"role": "admin"}),
        ];
        let mut seeds = Vec::new();
        for claim in &claims {
            let token = self.sign(claim.clone());
            seeds.push(InputBuilder::new().u8(0).raw(token.as_bytes()).build());
            seeds.push(InputBuilder::new().u8(1).raw(token.as_bytes()).build());
            let header = br#"{"alg":"HS256","typ":"JWT"}"#;
            let claims = serde_json::to_vec(claim).unwrap_or_default();
            seeds.push(
                InputBuilder::new()
                    .u8(2)
                    .long_bytes(header)
                    .raw(&claims)
                    .build(),
            );
        }
        for header in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"RS256","typ":"JWT"}"#,
            r#"{"alg":"HS256","kid":"k","crit":["exp"]}"#,
            r#"{"alg":"HS256","typ":7}"#,
        ] {
            seeds.push(
                InputBuilder::new()
                    .u8(2)
                    .long_bytes(header.as_bytes())
                    .raw(br#"{"sub":"alice","aud":"magnetar"}"#)
                    .build(),
            );
        }
        for url in [
            data_url(SECRET),
            "data:application/octet-stream;base64,AAEC".to_string(),
            "data:,plain".to_string(),
            "AAECAwQ=".to_string(),
            "http://example.invalid/key".to_string(),
        ] {
            seeds.push(InputBuilder::new().u8(3).raw(url.as_bytes()).build());
        }
        for key in [
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAK\n-----END RSA PRIVATE KEY-----\n",
            "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI\n-----END EC PRIVATE KEY-----\n",
        ] {
            seeds.push(InputBuilder::new().u8(4).raw(key.as_bytes()).build());
        }
        // A real P-256 key pair, in DER and PEM.
        if let Ok(pair) = magnetar_auth::keys::generate_key_pair(Algorithm::ES256) {
            for pem in [false, true] {
                if let Ok(private) = pair.private_key_bytes(pem) {
                    seeds.push(InputBuilder::new().u8(4).raw(&private).build());
                }
                if let Ok(Some(public)) = pair.public_key_bytes(pem) {
                    seeds.push(InputBuilder::new().u8(4).raw(&public).build());
                }
            }
        }
        seeds
    }

    fn run(&mut self, input: &[u8]) -> Signal {
        let mut input = Input::new(input);
        let mode = input.u8() % 5;
        let signal = Signal::new("token").with_num(u64::from(mode));
        match mode {
            0 => {
                let token = String::from_utf8_lossy(input.rest());
                match self.validator.validate(&token) {
                    Ok(valid) => {
                        assert!(!valid.role.is_empty(), "an accepted token has no role");
                        signal.with("ok")
                    }
                    Err(e) => signal.with_variant(&e),
                }
            }
            1 => {
                let token = String::from_utf8_lossy(input.rest());
                match header_algorithm(&token) {
                    Ok(alg) => signal.with("ok").with(alg.len().min(8).to_le_bytes()),
                    Err(e) => signal.with_variant(&e),
                }
            }
            2 => {
                let header = input.long_bytes();
                let claims = input.rest();
                let token = self.sign_raw(header, claims);
                match self.validator.validate(&token) {
                    Ok(valid) => {
                        let parsed: Map<String, Value> = serde_json::from_slice(claims)
                            .expect("accepted claims are a JSON object");
                        assert_eq!(
                            parsed.get("sub").and_then(Value::as_str),
                            Some(valid.role.as_str()),
                            "the role is not the sub claim"
                        );
                        signal.with("ok")
                    }
                    Err(e) => signal.with_variant(&e),
                }
            }
            3 => {
                let url = String::from_utf8_lossy(input.rest());
                if url.trim().starts_with("file:") {
                    return signal.with("file-url-skipped");
                }
                let _ = parse_algorithm(&url);
                match read_key_url(&url) {
                    Ok(bytes) => signal.with("ok").with_num(bytes.len().min(64) as u64),
                    Err(e) => signal.with_variant(&e),
                }
            }
            _ => {
                let bytes = input.rest();
                let public = VerifyKey::public_from_bytes(bytes)
                    .map(|k| format!("{:?}", k.default_algorithm()));
                let private = SignKey::private_from_bytes(bytes)
                    .map(|k| format!("{:?}", k.default_algorithm()));
                signal
                    .with(public.unwrap_or_else(|e| crate::engine::variant_name(&e)))
                    .with(private.unwrap_or_else(|e| crate::engine::variant_name(&e)))
            }
        }
    }
}
