//! `magnetar tokens` round trips: keys created by the CLI, tokens created with them, then
//! validated (and refused with the wrong key or after expiry).

use clap::Parser;
use magnetar_clients::tokens::{TokensArgs, execute};

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: TokensArgs,
}

fn run(args: &[&str]) -> anyhow::Result<String> {
    let mut argv = vec!["tokens"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv)?;
    Ok(String::from_utf8(execute(cli.args)?)?)
}

/// Steps: create-secret-key to a file (raw) and as base64; create a token with each form of
/// the key; validate it; a different secret refuses it.
#[test]
fn secret_key_round_trip() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let key = dir.path().join("secret.key");
    run(&[
        "create-secret-key",
        "--output",
        key.to_str().expect("utf-8 path"),
    ])?;
    assert_eq!(std::fs::read(&key)?.len(), 32);
    let file_url = format!("file://{}", key.display());
    let token = run(&[
        "create",
        "--subject",
        "alice",
        "--expiry",
        "1h",
        "--secret-key",
        &file_url,
    ])?;
    let claims: serde_json::Value = serde_json::from_str(&run(&[
        "validate",
        token.trim(),
        "--secret-key",
        &file_url,
    ])?)?;
    assert_eq!(claims["sub"], "alice");
    assert!(claims["exp"].as_u64().is_some());
    // A plain path works too.
    let plain = run(&[
        "validate",
        token.trim(),
        "--secret-key",
        key.to_str().expect("utf-8 path"),
    ])?;
    assert!(plain.contains("alice"));

    let b64 = run(&["create-secret-key", "--base64"])?;
    let data_url = format!("data:;base64,{}", b64.trim());
    let token2 = run(&["create", "--subject", "bob", "--secret-key", &data_url])?;
    let claims: serde_json::Value = serde_json::from_str(&run(&[
        "validate",
        token2.trim(),
        "--secret-key",
        &data_url,
    ])?)?;
    assert_eq!(claims["sub"], "bob");
    assert!(claims.get("exp").is_none());
    assert!(run(&["validate", token.trim(), "--secret-key", &data_url]).is_err());
    assert!(run(&["show", token.trim()])?.contains("alg: HS256"));
    Ok(())
}

/// Steps: create-key-pair for RS256 and ES256 in DER and PEM; create a token with the private
/// key; validate with the public key; the other pair's key refuses it.
#[test]
fn key_pair_round_trip() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut tokens = Vec::new();
    for (alg, pem) in [("RS256", false), ("ES256", false), ("ES256", true)] {
        let private = dir.path().join(format!("{alg}-{pem}.key"));
        let public = dir.path().join(format!("{alg}-{pem}.pub"));
        let mut args = vec![
            "create-key-pair",
            "--algorithm",
            alg,
            "--output-private-key",
            private.to_str().expect("utf-8 path"),
            "--output-public-key",
            public.to_str().expect("utf-8 path"),
        ];
        if pem {
            args.push("--pem");
        }
        run(&args)?;
        let private_url = format!("file://{}", private.display());
        let public_url = format!("file://{}", public.display());
        let token = run(&[
            "create",
            "--subject",
            "svc",
            "--expiry",
            "10m",
            "--private-key",
            &private_url,
        ])?;
        assert!(run(&["show", token.trim()])?.contains(&format!("alg: {alg}")));
        let claims: serde_json::Value = serde_json::from_str(&run(&[
            "validate",
            token.trim(),
            "--public-key",
            &public_url,
        ])?)?;
        assert_eq!(claims["sub"], "svc");
        tokens.push((token, public_url));
    }
    // ES256 token against the RSA public key, and ES256 against the other P-256 key.
    assert!(run(&["validate", tokens[1].0.trim(), "--public-key", &tokens[0].1]).is_err());
    assert!(run(&["validate", tokens[1].0.trim(), "--public-key", &tokens[2].1]).is_err());
    assert!(
        run(&[
            "create",
            "--subject",
            "x",
            "--expiry",
            "soon",
            "--secret-key",
            "data:;base64,AAAA"
        ])
        .is_err()
    );
    Ok(())
}
