//! Sizes and durations: Kubernetes quantities turned into Curvine capacities, and the
//! parsing of Curvine's size and duration strings for the typed config.
//!
//! Curvine's sizes (`10GB`, `128MB`, `0`) are 1024-based with units B, K/KB, M/MB, G/GB,
//! T/TB, P/PB. Kubernetes quantities distinguish binary (`Gi`) from decimal (`G`)
//! suffixes, so `5Gi` becomes `5GB` while decimal `500G` becomes its exact byte count.

use std::time::Duration;

const KI: u128 = 1024;

/// Converts a Kubernetes quantity (`5Gi`, `1536Mi`, `500G`, `1e9`, `1.5Gi`) into a Curvine
/// capacity string. Binary suffixes keep their number (`5Gi` → `5GB`); anything else is
/// written as an exact byte count (`500G` → `500000000000B`). Returns why on failure.
pub fn quantity_to_capacity(quantity: &str) -> Result<String, String> {
    let q = quantity.trim();
    let (number, suffix) = split_number(q);
    // (suffix, Curvine unit, extra factor of 1024, power of 1024 of the suffix)
    let binary: &[(&str, &str, u32, u32)] = &[
        ("Ki", "KB", 0, 1),
        ("Mi", "MB", 0, 2),
        ("Gi", "GB", 0, 3),
        ("Ti", "TB", 0, 4),
        ("Pi", "PB", 0, 5),
        ("Ei", "PB", 1, 6),
    ];
    if let Some((_, unit, extra, power)) = binary.iter().find(|(s, ..)| *s == suffix) {
        if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) {
            let n: u128 = number
                .parse()
                .map_err(|_| format!("{quantity:?} is too large"))?;
            if n.checked_mul(KI.pow(*power))
                .is_none_or(|b| b > u128::from(u64::MAX))
            {
                return Err(format!("{quantity:?} is too large"));
            }
            let n = n * KI.pow(*extra);
            if n == 0 {
                return Err(format!("{quantity:?} is zero"));
            }
            return Ok(format!("{n}{unit}"));
        }
    }
    let bytes = quantity_to_bytes(q)?;
    if bytes == 0 {
        return Err(format!("{quantity:?} is zero"));
    }
    Ok(format!("{bytes}B"))
}

/// The exact number of bytes of a Kubernetes quantity; fractional bytes are an error.
pub fn quantity_to_bytes(quantity: &str) -> Result<u64, String> {
    let q = quantity.trim();
    let bad = || format!("{quantity:?} is not a Kubernetes quantity such as 5Gi, 1536Mi or 500G");
    let (number, suffix) = split_number(q);
    if number.is_empty() || number.starts_with('-') {
        return Err(bad());
    }
    let number = number.strip_prefix('+').unwrap_or(number);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    // value = mantissa * 2^a * 10^b / 10^frac_len
    let mantissa: u128 = format!("{int_part}{frac_part}")
        .trim_start_matches('0')
        .parse()
        .or_else(|e: std::num::ParseIntError| {
            if *e.kind() == std::num::IntErrorKind::Empty {
                Ok(0)
            } else {
                Err(format!("{quantity:?} is too large"))
            }
        })?;
    let (mul, dec_exp): (u128, i32) = match suffix {
        "" => (1, 0),
        "Ki" => (KI, 0),
        "Mi" => (KI.pow(2), 0),
        "Gi" => (KI.pow(3), 0),
        "Ti" => (KI.pow(4), 0),
        "Pi" => (KI.pow(5), 0),
        "Ei" => (KI.pow(6), 0),
        "n" => (1, -9),
        "u" => (1, -6),
        "m" => (1, -3),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        s if s.starts_with(['e', 'E']) => {
            let exp: i32 = s[1..].parse().map_err(|_| bad())?;
            if !(-30..=30).contains(&exp) {
                return Err(bad());
            }
            (1, exp)
        }
        _ => return Err(bad()),
    };
    let exp = dec_exp - frac_part.len() as i32;
    let too_large = || format!("{quantity:?} is too large");
    let mut value = mantissa.checked_mul(mul).ok_or_else(too_large)?;
    if exp >= 0 {
        value = value
            .checked_mul(10u128.checked_pow(exp as u32).ok_or_else(too_large)?)
            .ok_or_else(too_large)?;
    } else {
        let div = 10u128.checked_pow((-exp) as u32).ok_or_else(bad)?;
        if value % div != 0 {
            return Err(format!("{quantity:?} is not a whole number of bytes"));
        }
        value /= div;
    }
    u64::try_from(value).map_err(|_| too_large())
}

/// Splits `123.5Gi` into (`123.5`, `Gi`); an exponent (`1e9`) stays in the suffix.
fn split_number(q: &str) -> (&str, &str) {
    let end = q
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.' || *c == '+' || *c == '-'))
        .map(|(i, _)| i)
        .unwrap_or(q.len());
    (&q[..end], &q[end..])
}

/// Parses a Curvine size (`10GB`, `128MB`, `0`, `1.5G`, `64 KiB`), 1024-based.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let bad = || format!("{text:?} is not a size such as 0, 512MB or 10GB");
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1
    {
        return Err(bad());
    }
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KI" | "KIB" => 1,
        "M" | "MB" | "MI" | "MIB" => 2,
        "G" | "GB" | "GI" | "GIB" => 3,
        "T" | "TB" | "TI" | "TIB" => 4,
        "P" | "PB" | "PI" | "PIB" => 5,
        _ => return Err(bad()),
    };
    let mult = 1u128 << (10 * shift);
    let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
    let int: u128 = int_part.parse().map_err(|_| bad())?;
    let mut bytes = int.checked_mul(mult).ok_or_else(bad)?;
    if !frac_part.is_empty() {
        let frac: u128 = frac_part.parse().map_err(|_| bad())?;
        let scale = 10u128.checked_pow(frac_part.len() as u32).ok_or_else(bad)?;
        bytes += frac.checked_mul(mult).ok_or_else(bad)? / scale;
    }
    u64::try_from(bytes).map_err(|_| bad())
}

/// Parses a duration such as `30s`, `500ms`, `12h`, `1d` or `60` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || format!("{text:?} is not a duration such as 500ms, 30s, 5min, 12h or 1d");
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return Err(bad());
    }
    let value: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit.to_ascii_lowercase().as_str() {
        "ns" => value / 1e9,
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "" | "s" | "sec" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_quantities_keep_their_number() {
        assert_eq!(quantity_to_capacity("5Gi").unwrap(), "5GB");
        assert_eq!(quantity_to_capacity("1536Mi").unwrap(), "1536MB");
        assert_eq!(quantity_to_capacity("1Ti").unwrap(), "1TB");
        assert_eq!(quantity_to_capacity("2Pi").unwrap(), "2PB");
        assert_eq!(quantity_to_capacity("1Ei").unwrap(), "1024PB");
        assert_eq!(quantity_to_capacity("512Ki").unwrap(), "512KB");
    }

    #[test]
    fn decimal_quantities_become_exact_bytes() {
        assert_eq!(quantity_to_capacity("500G").unwrap(), "500000000000B");
        assert_eq!(quantity_to_capacity("100M").unwrap(), "100000000B");
        assert_eq!(quantity_to_capacity("1e9").unwrap(), "1000000000B");
        assert_eq!(quantity_to_capacity("1.5Gi").unwrap(), "1610612736B");
        assert_eq!(quantity_to_capacity("4096").unwrap(), "4096B");
        assert_eq!(quantity_to_capacity("1.5k").unwrap(), "1500B");
    }

    #[test]
    fn bad_quantities_are_errors() {
        for q in [
            "",
            "Gi",
            "5Gb",
            "-5Gi",
            "0",
            "0Gi",
            "1.5",
            "abc",
            "5 Gi",
            "1e99",
            "99999999999999999999999Gi",
        ] {
            assert!(quantity_to_capacity(q).is_err(), "{q} should fail");
        }
    }

    #[test]
    fn capacities_round_trip_through_parse_size() {
        for q in ["5Gi", "1536Mi", "500G", "1Ti", "1.5Gi"] {
            let cap = quantity_to_capacity(q).unwrap();
            assert_eq!(
                parse_size(&cap).unwrap(),
                quantity_to_bytes(q).unwrap(),
                "{q}"
            );
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0").unwrap(), 0);
        assert_eq!(parse_size("10GB").unwrap(), 10 << 30);
        assert_eq!(parse_size("128mb").unwrap(), 128 << 20);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("64 KiB").unwrap(), 64 << 10);
        assert_eq!(parse_size("7B").unwrap(), 7);
        for bad in ["", "GB", "1..5G", "10XB", "-1", ".5G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(
            parse_duration("12h").unwrap(),
            Duration::from_secs(12 * 3600)
        );
        assert_eq!(parse_duration("5min").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("60").unwrap(), Duration::from_secs(60));
        for bad in ["", "s", "12x", "1h30m", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
