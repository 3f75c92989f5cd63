//! Token authentication end to end: keys generated, written as Pulsar writes them (raw secret,
//! DER) or as PEM, read back through key URLs, tokens signed and checked. Every way a token must
//! be refused is checked: another algorithm, `alg: none`, a wrong key, expiry, audience.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use magnetar_auth::keys::{self, data_url, generate_key_pair, generate_secret};
use magnetar_auth::token::ValidatedToken;
use magnetar_auth::{
    Algorithm, AuthConfig, AuthenticationError, Authenticator, SignKey, TokenError, TokenSettings,
    TokenSigner, TokenValidator, VerifyKey,
};
use serde_json::{Map, Value, json};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn pair(alg: Algorithm) -> (SignKey, VerifyKey) {
    let sign = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            SignKey::Secret(generate_secret(alg).expect("secret"))
        }
        _ => generate_key_pair(alg).expect("key pair"),
    };
    let verify = sign.verify_key();
    (sign, verify)
}

fn validate(verify: &VerifyKey, alg: Algorithm, token: &str) -> Result<ValidatedToken, TokenError> {
    TokenValidator::new(verify, alg, "sub")?.validate(token)
}

#[test]
fn every_algorithm_round_trips() {
    for alg in [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::ES256,
    ] {
        let (sign, verify) = pair(alg);
        let token = TokenSigner::new(&sign, alg)
            .expect("signer")
            .create("alice", Some(3600))
            .expect("token");
        let checked = validate(&verify, alg, &token).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(checked.role, "alice");
        assert!(checked.expires_at.is_some_and(|exp| exp > now()));
    }
}

#[test]
fn token_without_exp_never_expires() {
    let (sign, verify) = pair(Algorithm::HS256);
    let token = TokenSigner::new(&sign, Algorithm::HS256)
        .expect("signer")
        .create("bob", None)
        .expect("token");
    let checked = validate(&verify, Algorithm::HS256, &token).expect("valid");
    assert_eq!(checked.expires_at, None);
}

/// A live connection's token expires at `exp` plus the configured clock skew, whatever JSON
/// number `exp` is: an integer, or a fractional number (which must not read as "never").
#[test]
fn expiry_counts_the_clock_skew_and_any_numeric_exp() {
    let (sign, verify) = pair(Algorithm::HS256);
    let signer = TokenSigner::new(&sign, Algorithm::HS256).expect("signer");
    let exp = now() + 100;
    let validator = TokenValidator::new(&verify, Algorithm::HS256, "sub")
        .expect("validator")
        .with_leeway(30);
    let token = signer.create("dave", Some(100)).expect("token");
    let checked = validator.validate(&token).expect("valid");
    let at = checked.expires_at.expect("expires");
    assert!((exp + 30..=exp + 31).contains(&at), "{at} vs exp {exp}");

    let mut claims = Map::new();
    claims.insert("sub".into(), json!("erin"));
    claims.insert("exp".into(), json!(exp as f64 + 0.5));
    let fractional = signer.sign(&claims).expect("token");
    match validator.validate(&fractional) {
        Ok(checked) => assert_eq!(checked.expires_at, Some(exp + 30)),
        // Refusing a non-integer `exp` outright is as safe (the JWT library does).
        Err(e) => assert!(!matches!(e, TokenError::Expired), "{e:?}"),
    }
}

#[test]
fn expired_token_is_refused() {
    let (sign, verify) = pair(Algorithm::RS256);
    let mut claims = Map::new();
    claims.insert("sub".into(), json!("carol"));
    claims.insert("exp".into(), json!(now() - 10));
    let token = TokenSigner::new(&sign, Algorithm::RS256)
        .expect("signer")
        .sign(&claims)
        .expect("token");
    assert!(matches!(
        validate(&verify, Algorithm::RS256, &token),
        Err(TokenError::Expired)
    ));
}

#[test]
fn other_algorithm_is_refused() {
    let (sign, verify) = pair(Algorithm::HS384);
    let token = TokenSigner::new(&sign, Algorithm::HS384)
        .expect("signer")
        .create("x", None)
        .expect("token");
    // Same secret, but only HS256 is configured.
    let err = validate(&verify, Algorithm::HS256, &token).expect_err("HS384 refused");
    assert!(
        matches!(err, TokenError::WrongAlgorithm { ref found, .. } if found == "HS384"),
        "{err}"
    );
}

#[test]
fn alg_none_is_refused() {
    let (_, verify) = pair(Algorithm::HS256);
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"mallory"}"#);
    let token = format!("{header}.{payload}.");
    let err = validate(&verify, Algorithm::HS256, &token).expect_err("none refused");
    assert!(
        matches!(err, TokenError::WrongAlgorithm { ref found, .. } if found == "none"),
        "{err}"
    );
}

#[test]
fn rsa_public_key_as_hmac_secret_is_refused() {
    // The classic key-confusion attack: sign HS256 with the public key bytes.
    let (sign, verify) = pair(Algorithm::RS256);
    let public_der = sign.public_key_bytes(false).expect("der").expect("public");
    let forged = TokenSigner::new(&SignKey::Secret(public_der), Algorithm::HS256)
        .expect("signer")
        .create("mallory", None)
        .expect("token");
    assert!(matches!(
        validate(&verify, Algorithm::RS256, &forged),
        Err(TokenError::WrongAlgorithm { .. })
    ));
}

#[test]
fn wrong_key_is_refused() {
    for alg in [Algorithm::HS256, Algorithm::RS256, Algorithm::ES256] {
        let (sign, _) = pair(alg);
        let (_, other) = pair(alg);
        let token = TokenSigner::new(&sign, alg)
            .expect("signer")
            .create("x", None)
            .expect("token");
        let err = validate(&other, alg, &token).expect_err("wrong key");
        assert!(matches!(err, TokenError::BadSignature), "{alg:?}: {err}");
    }
}

#[test]
fn garbage_is_refused_without_panic() {
    let (_, verify) = pair(Algorithm::HS256);
    for token in [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "....",
        "eyJhbGciOiJIUzI1NiJ9.!!!.x",
    ] {
        assert!(
            validate(&verify, Algorithm::HS256, token).is_err(),
            "{token:?}"
        );
    }
}

#[test]
fn audience_and_role_claims() {
    let (sign, verify) = pair(Algorithm::HS256);
    let signer = TokenSigner::new(&sign, Algorithm::HS256).expect("signer");
    let token = |claims: Value| {
        signer
            .sign(claims.as_object().expect("object"))
            .expect("token")
    };
    let validator = TokenValidator::new(&verify, Algorithm::HS256, "role")
        .expect("validator")
        .with_audience("audience", "magnetar");
    let ok = validator
        .validate(&token(json!({"role": "svc", "audience": "magnetar"})))
        .expect("valid");
    assert_eq!(ok.role, "svc");
    assert!(
        validator
            .validate(&token(
                json!({"role": "svc", "audience": ["x", "magnetar"]})
            ))
            .is_ok()
    );
    for bad in [
        json!({"role": "svc"}),
        json!({"role": "svc", "audience": "other"}),
    ] {
        assert!(matches!(
            validator.validate(&token(bad)),
            Err(TokenError::WrongAudience { .. })
        ));
    }
    assert!(matches!(
        validator.validate(&token(json!({"sub": "svc", "audience": "magnetar"}))),
        Err(TokenError::MissingRole(_))
    ));
}

#[test]
fn keys_read_from_urls_in_der_and_pem() {
    let dir = tempfile::tempdir().expect("tempdir");
    for alg in [Algorithm::RS256, Algorithm::ES256] {
        let sign = generate_key_pair(alg).expect("pair");
        for pem in [false, true] {
            let private = dir.path().join(format!("{alg:?}-{pem}.key"));
            let public = dir.path().join(format!("{alg:?}-{pem}.pub"));
            std::fs::write(&private, sign.private_key_bytes(pem).expect("private")).expect("write");
            let public_bytes = sign.public_key_bytes(pem).expect("public").expect("pair");
            std::fs::write(&public, &public_bytes).expect("write");
            let signer_key = SignKey::private_from_url(&format!("file://{}", private.display()))
                .expect("read private");
            let token = TokenSigner::new(&signer_key, alg)
                .expect("signer")
                .create("dave", None)
                .expect("token");
            for url in [
                format!("file://{}", public.display()),
                data_url(&public_bytes),
            ] {
                let verify = VerifyKey::public_from_url(&url).expect("read public");
                assert_eq!(verify.default_algorithm(), alg);
                assert_eq!(validate(&verify, alg, &token).expect("valid").role, "dave");
            }
        }
    }
    // Bare base64 is accepted as Pulsar does; unknown schemes are not.
    assert_eq!(keys::read_key_url("AAEC").expect("base64"), vec![0, 1, 2]);
    assert!(keys::read_key_url("http://example.invalid/key").is_err());
    assert!(keys::read_key_url("file:///does/not/exist").is_err());
}

#[test]
fn authenticator_from_config_for_binary_and_http() {
    let secret = generate_secret(Algorithm::HS256).expect("secret");
    let config = AuthConfig {
        authentication_enabled: true,
        token: TokenSettings {
            secret_key: Some(data_url(&secret)),
            ..TokenSettings::default()
        },
        ..AuthConfig::default()
    };
    let auth = Authenticator::from_config(&config).expect("authenticator");
    let token = TokenSigner::new(&SignKey::Secret(secret), Algorithm::HS256)
        .expect("signer")
        .create("erin", Some(60))
        .expect("token");
    assert_eq!(
        auth.authenticate("token", token.as_bytes())
            .expect("binary")
            .role,
        "erin"
    );
    let bearer = format!("Bearer {token}");
    assert_eq!(
        auth.authenticate_http(Some(&bearer))
            .expect("http")
            .expect("role")
            .role,
        "erin"
    );
    assert!(matches!(
        auth.authenticate_http(None),
        Err(AuthenticationError::MissingCredentials)
    ));
    assert!(matches!(
        auth.authenticate_http(Some("Basic abc")),
        Err(AuthenticationError::BadHeader)
    ));
    assert!(matches!(
        auth.authenticate("tls", b"x"),
        Err(AuthenticationError::UnsupportedMethod(_))
    ));
    assert!(matches!(
        auth.authenticate("token", b"nope"),
        Err(AuthenticationError::Token(_))
    ));
    let anonymous = auth.clone().with_anonymous_role(Some("guest".into()));
    assert_eq!(
        anonymous
            .authenticate_http(None)
            .expect("anon")
            .expect("role")
            .role,
        "guest"
    );

    // Off: nobody is asked for anything. On without a key: refused at start.
    assert_eq!(
        Authenticator::from_config(&AuthConfig::default())
            .expect("off")
            .authenticate_http(None)
            .expect("ok"),
        None
    );
    let broken = AuthConfig {
        authentication_enabled: true,
        ..AuthConfig::default()
    };
    assert!(matches!(
        Authenticator::from_config(&broken),
        Err(AuthenticationError::Config(_))
    ));
    let mismatch = AuthConfig {
        authentication_enabled: true,
        token: TokenSettings {
            secret_key: Some(data_url(b"k")),
            secret_alg: "RS256".into(),
            ..TokenSettings::default()
        },
        ..AuthConfig::default()
    };
    assert!(Authenticator::from_config(&mismatch).is_err());
}
