//! Durations and sizes as Pulsar's CLI writes them: `30s`, `10m`, `2h`, `1d`, `1w`, `1y`
//! (a bare number is seconds) and `512K`, `10M`, `16G`, `3T` (a bare number is bytes);
//! `-1` means unlimited where the setting allows it.

/// Seconds in a duration like `1h`. `-1` stays `-1`.
pub fn parse_duration_secs(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if text == "-1" {
        return Ok(-1);
    }
    let (number, unit) = split_unit(text);
    let n: i64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?} (e.g. 30s, 10m, 2h, 1d, 1w, 1y)"))?;
    let factor = match unit.to_ascii_lowercase().as_str() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        other => {
            return Err(format!(
                "unknown time unit {other:?} in {text:?} (s, m, h, d, w, y)"
            ));
        }
    };
    if n < 0 {
        return Err(format!("invalid duration {text:?}: negative"));
    }
    n.checked_mul(factor)
        .ok_or_else(|| format!("duration {text:?} is too large"))
}

/// Bytes in a size like `10M`. `-1` stays `-1`.
pub fn parse_size_bytes(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if text == "-1" {
        return Ok(-1);
    }
    let (number, unit) = split_unit(text);
    let n: i64 = number
        .parse()
        .map_err(|_| format!("invalid size {text:?} (e.g. 512K, 10M, 16G, 3T)"))?;
    let factor: i64 = match unit.to_ascii_lowercase().trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {text:?} (K, M, G, T)"
            ));
        }
    };
    if n < 0 {
        return Err(format!("invalid size {text:?}: negative"));
    }
    n.checked_mul(factor)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

fn split_unit(text: &str) -> (&str, &str) {
    let at = text
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(text.len());
    text.split_at(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("90"), Ok(90));
        assert_eq!(parse_duration_secs("10m"), Ok(600));
        assert_eq!(parse_duration_secs("1h"), Ok(3600));
        assert_eq!(parse_duration_secs("2d"), Ok(172_800));
        assert_eq!(parse_duration_secs("-1"), Ok(-1));
        assert!(parse_duration_secs("1x").is_err());
        assert!(parse_duration_secs("h").is_err());
        assert!(parse_duration_secs("-5m").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_size_bytes("10M"), Ok(10 << 20));
        assert_eq!(parse_size_bytes("512kb"), Ok(512 << 10));
        assert_eq!(parse_size_bytes("-1"), Ok(-1));
        assert!(parse_size_bytes("1Q").is_err());
    }
}
