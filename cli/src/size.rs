//! Byte sizes with units, as typed by operators: `10GiB`, `512MiB`, `1.5TiB`, `4096`.
//!
//! Binary units (`KiB`, `MiB`, `GiB`, `TiB`, `PiB`, and the shorthands `K`, `M`, `G`,
//! `T`, `P` as in qemu-img and dd) are powers of 1024; decimal units (`kB`/`KB`, `MB`,
//! `GB`, `TB`, `PB`) are powers of 1000; `B` or no unit is bytes. Units are
//! case-insensitive. A fraction must come out as a whole number of bytes.

/// Why a size does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// Empty input.
    #[error("empty size")]
    Empty,
    /// The number part is not a decimal number.
    #[error("{input:?}: not a number")]
    NotANumber {
        /// The input.
        input: String,
    },
    /// The unit is not known.
    #[error(
        "{input:?}: unknown unit {unit:?} (use B, KiB, MiB, GiB, TiB, PiB or kB, MB, GB, TB, PB)"
    )]
    UnknownUnit {
        /// The input.
        input: String,
        /// The unit text.
        unit: String,
    },
    /// The size is not a whole number of bytes (`1.3B`).
    #[error("{input:?}: not a whole number of bytes")]
    Fractional {
        /// The input.
        input: String,
    },
    /// The size does not fit in 64 bits.
    #[error("{input:?}: too large")]
    TooLarge {
        /// The input.
        input: String,
    },
}

fn unit_factor(unit: &str) -> Option<u128> {
    let u = unit.to_ascii_lowercase();
    let k: u128 = 1024;
    Some(match u.as_str() {
        "" | "b" => 1,
        "k" | "kib" => k,
        "m" | "mib" => k.pow(2),
        "g" | "gib" => k.pow(3),
        "t" | "tib" => k.pow(4),
        "p" | "pib" => k.pow(5),
        "kb" => 1000,
        "mb" => 1000u128.pow(2),
        "gb" => 1000u128.pow(3),
        "tb" => 1000u128.pow(4),
        "pb" => 1000u128.pow(5),
        _ => return None,
    })
}

/// Parse a size.
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(SizeError::Empty);
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = (&s[..split], s[split..].trim());
    let nan = || SizeError::NotANumber {
        input: input.into(),
    };
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || num.ends_with('.')
        || frac.len() > 18
    {
        return Err(nan());
    }
    let factor = unit_factor(unit).ok_or_else(|| SizeError::UnknownUnit {
        input: input.into(),
        unit: unit.into(),
    })?;
    let too_large = || SizeError::TooLarge {
        input: input.into(),
    };
    // value = (int + frac / 10^len) * factor, computed exactly in u128.
    let int: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| too_large())?
    };
    let scale = 10u128.pow(u32::try_from(frac.len()).unwrap_or(0));
    let frac: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| nan())?
    };
    let whole = int.checked_mul(factor).ok_or_else(too_large)?;
    let part = frac.checked_mul(factor).ok_or_else(too_large)?;
    if part % scale != 0 {
        return Err(SizeError::Fractional {
            input: input.into(),
        });
    }
    let total = whole.checked_add(part / scale).ok_or_else(too_large)?;
    u64::try_from(total).map_err(|_| too_large())
}

/// Render bytes for people: the largest binary unit that divides it exactly, else
/// bytes (`10GiB`, `1536MiB`, `4097B`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 5] = [
        ("PiB", 1 << 50),
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    if bytes == 0 {
        return "0B".into();
    }
    for (name, f) in UNITS {
        if bytes % f == 0 {
            return format!("{}{name}", bytes / f);
        }
    }
    format!("{bytes}B")
}

/// Render bytes for people, rounded to one decimal of the largest binary unit that fits
/// (`1.5GiB`, `812.3MiB`, `17B`): for capacities, which are rarely exact multiples.
pub fn format_size_approx(bytes: u64) -> String {
    const UNITS: [(&str, u64); 5] = [
        ("PiB", 1 << 50),
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, f) in UNITS {
        if bytes >= f {
            let v = bytes as f64 / f as f64;
            let text = format!("{v:.1}");
            return format!("{}{name}", text.strip_suffix(".0").unwrap_or(&text));
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approximate_sizes_round_to_one_decimal() {
        assert_eq!(format_size_approx(0), "0B");
        assert_eq!(format_size_approx(1023), "1023B");
        assert_eq!(format_size_approx(1536), "1.5KiB");
        assert_eq!(format_size_approx(3 << 30), "3GiB");
        assert_eq!(format_size_approx((10 << 30) + (1 << 29)), "10.5GiB");
        assert_eq!(format_size_approx(u64::MAX), "16384PiB");
    }

    const GIB: u64 = 1 << 30;

    #[test]
    fn units_parse_to_bytes() {
        for (text, want) in [
            ("10GiB", 10 * GIB),
            ("10gib", 10 * GIB),
            ("10 GiB", 10 * GIB),
            ("10G", 10 * GIB),
            ("1TiB", 1 << 40),
            ("1.5GiB", 3 * GIB / 2),
            (".5KiB", 512),
            ("512MiB", 512 << 20),
            ("4096", 4096),
            ("4096B", 4096),
            ("1kB", 1000),
            ("2GB", 2_000_000_000),
            ("16EiB".replace("EiB", "PiB").as_str(), 16 << 50),
            (" 7 ", 7),
        ] {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_sizes_are_typed_errors() {
        assert_eq!(parse_size(""), Err(SizeError::Empty));
        assert!(matches!(
            parse_size("GiB"),
            Err(SizeError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_size("1..5G"),
            Err(SizeError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_size("5."),
            Err(SizeError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_size("-5G"),
            Err(SizeError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_size("10XB"),
            Err(SizeError::UnknownUnit { ref unit, .. }) if unit == "XB"
        ));
        assert!(matches!(
            parse_size("1.3B"),
            Err(SizeError::Fractional { .. })
        ));
        assert!(matches!(
            parse_size("16384PiB"),
            Err(SizeError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_size("99999999999999999999999999999999999999999"),
            Err(SizeError::TooLarge { .. })
        ));
        let msg = parse_size("3 parsecs").unwrap_err().to_string();
        assert!(msg.contains("parsecs") && msg.contains("GiB"), "{msg}");
    }

    #[test]
    fn format_picks_the_largest_exact_unit_and_round_trips() {
        for (bytes, text) in [
            (10 * GIB, "10GiB"),
            (3 * GIB / 2, "1536MiB"),
            (4097, "4097B"),
            (0, "0B"),
            (1 << 40, "1TiB"),
        ] {
            assert_eq!(format_size(bytes), text);
            assert_eq!(parse_size(text), Ok(bytes));
        }
    }
}
