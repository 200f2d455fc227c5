//! Exact decimal text to integer conversion, the only way a USD amount enters the filter.
//!
//! Prices arrive as decimal text: `"0.075"` USD per million tokens in plugin configuration,
//! `2.5e-06` USD per token in LiteLLM's list; budget limits as `"12.50"` USD, read with
//! [`parse_scaled_exact`] so one grammar serves every amount. Going through `f64` would turn `0.075` into
//! `0.07499999999999999722...` and a price that should be exact would drift by a pico-dollar
//! here and there, which then shows up in counters summed over millions of requests. So the
//! text is read digit by digit into a `u128` mantissa and a power-of-ten exponent, scaled by an
//! exact power of ten, and only the final division rounds -- once, half up (ties away from
//! zero; every value here is non-negative).
//!
//! JSON numbers that serde hands over as `f64` are first printed back in their shortest
//! round-trip form, which reproduces the decimal the author wrote whenever it has at most 15
//! significant digits and was parsed correctly rounded; see [`f64_text`].

use core::fmt::Write as _;

/// Why a decimal text was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("not a decimal number")]
    Syntax,
    #[error("negative prices are not allowed")]
    Negative,
    #[error("more than 36 significant digits")]
    TooPrecise,
    #[error("too large")]
    TooLarge,
    /// Only from [`parse_scaled_exact`]: the value has digits below the unit.
    #[error("more decimal places than the unit holds")]
    Inexact,
}

/// Most significant digits kept exactly; 10^36 leaves room in a `u128` for the scaling below.
const MAX_DIGITS: u32 = 36;

/// Parses `text` (`[+]digits[.digits][e[+-]digits]`, surrounding whitespace allowed) and
/// returns `round_half_up(value * 10^scale)`.
///
/// `scale` is 6 for "USD per 1M tokens" -> pico-USD per token and 12 for "USD per token" ->
/// pico-USD per token.
pub fn parse_scaled(text: &str, scale: u32) -> Result<u64, DecimalError> {
    parse(text, scale, false)
}

/// [`parse_scaled`] without rounding: [`DecimalError::Inexact`] when `value * 10^scale` is
/// not a whole number (a budget limit of `"1.0000000000001"` USD is a typo, not a pico-dollar
/// to round away).
pub fn parse_scaled_exact(text: &str, scale: u32) -> Result<u64, DecimalError> {
    parse(text, scale, true)
}

fn parse(text: &str, scale: u32, exact: bool) -> Result<u64, DecimalError> {
    let bytes = text.trim().as_bytes();
    let mut rest = bytes;
    match rest.split_first() {
        Some((b'+', tail)) => rest = tail,
        Some((b'-', _)) => return Err(DecimalError::Negative),
        _ => {}
    }
    let mut mantissa: u128 = 0;
    let mut significant: u32 = 0;
    let mut frac_digits: i64 = 0;
    let mut seen_digit = false;
    let mut seen_point = false;
    while let Some((&c, tail)) = rest.split_first() {
        match c {
            b'0'..=b'9' => {
                seen_digit = true;
                if mantissa != 0 || c != b'0' {
                    significant += 1;
                    if significant > MAX_DIGITS {
                        return Err(DecimalError::TooPrecise);
                    }
                }
                mantissa = mantissa * 10 + u128::from(c - b'0');
                if seen_point {
                    frac_digits += 1;
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => break,
        }
        rest = tail;
    }
    if !seen_digit {
        return Err(DecimalError::Syntax);
    }
    let mut exponent: i64 = 0;
    if let Some((&c, tail)) = rest.split_first() {
        if c != b'e' && c != b'E' {
            return Err(DecimalError::Syntax);
        }
        rest = tail;
        let negative = match rest.split_first() {
            Some((b'-', t)) => {
                rest = t;
                true
            }
            Some((b'+', t)) => {
                rest = t;
                false
            }
            _ => false,
        };
        if rest.is_empty() {
            return Err(DecimalError::Syntax);
        }
        for &d in rest {
            if !d.is_ascii_digit() {
                return Err(DecimalError::Syntax);
            }
            // Saturate far beyond any meaningful exponent instead of overflowing.
            exponent = (exponent * 10 + i64::from(d - b'0')).min(1_000_000);
        }
        if negative {
            exponent = -exponent;
        }
    }
    if mantissa == 0 {
        return Ok(0);
    }
    let shift = i64::from(scale) + exponent - frac_digits;
    if shift >= 0 {
        let factor = u32::try_from(shift)
            .ok()
            .and_then(|s| 10u128.checked_pow(s))
            .ok_or(DecimalError::TooLarge)?;
        let value = mantissa.checked_mul(factor).ok_or(DecimalError::TooLarge)?;
        u64::try_from(value).map_err(|_| DecimalError::TooLarge)
    } else {
        // mantissa < 10^36, so a divisor of 10^38 or more always rounds to 0.
        let Some(divisor) = u32::try_from(-shift).ok().filter(|k| *k <= 38).map(|k| 10u128.pow(k))
        else {
            return if exact { Err(DecimalError::Inexact) } else { Ok(0) };
        };
        let quotient = mantissa / divisor;
        let remainder = mantissa % divisor;
        if exact && remainder != 0 {
            return Err(DecimalError::Inexact);
        }
        // remainder < divisor <= 10^38, so doubling stays below u128::MAX (3.4e38).
        let rounded = if remainder * 2 >= divisor { quotient + 1 } else { quotient };
        u64::try_from(rounded).map_err(|_| DecimalError::TooLarge)
    }
}

/// Shortest decimal text that parses back to `value`, in a stack buffer.
///
/// serde_json parses short decimals such as `2.5e-06` correctly rounded (the mantissa and the
/// power of ten are both exact in an `f64`), and the shortest round-trip text of a correctly
/// rounded number with at most 15 significant digits is that number's own digits. Longer
/// inputs may come back with their 17-digit neighbour, which the caller rounds to pico anyway.
pub struct F64Text {
    buf: [u8; 40],
    len: usize,
}

impl F64Text {
    pub fn as_str(&self) -> &str {
        self.buf.get(..self.len).and_then(|b| core::str::from_utf8(b).ok()).unwrap_or("")
    }
}

impl core::fmt::Write for F64Text {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(core::fmt::Error)?;
        let slot = self.buf.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Formats `value` as its shortest round-trip text; see [`F64Text`].
pub fn f64_text(value: f64) -> F64Text {
    let mut out = F64Text { buf: [0; 40], len: 0 };
    // serde_json's float printer (shortest round-trip digits, e.g. `0.075`, `2.5e-6`,
    // `1e+21`) rather than core's `{:e}`: the module carries serde_json's anyway, and core's
    // float formatting is about 20 KB of wasm. The longest output is 24 bytes
    // ("-2.2250738585072014e-308"), so the write cannot run out of room; if it did, or for
    // NaN and infinities (no JSON number), the empty text is rejected as a syntax error.
    match serde_json::Number::from_f64(value) {
        Some(number) if write!(out, "{number}").is_ok() => {}
        _ => out.len = 0,
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn usd_per_million_becomes_pico_per_token_exactly() {
        assert_eq!(parse_scaled("2.50", 6), Ok(2_500_000));
        assert_eq!(parse_scaled("0.075", 6), Ok(75_000));
        assert_eq!(parse_scaled("0.005", 6), Ok(5_000));
        assert_eq!(parse_scaled("10", 6), Ok(10_000_000));
        assert_eq!(parse_scaled(" +18.75 ", 6), Ok(18_750_000));
        assert_eq!(parse_scaled(".5", 6), Ok(500_000));
        assert_eq!(parse_scaled("5.", 6), Ok(5_000_000));
    }

    #[test]
    fn usd_per_token_in_exponent_form_becomes_pico_exactly() {
        assert_eq!(parse_scaled("2.5e-06", 12), Ok(2_500_000));
        assert_eq!(parse_scaled("7.5e-08", 12), Ok(75_000));
        assert_eq!(parse_scaled("5e-09", 12), Ok(5_000));
        assert_eq!(parse_scaled("1E-5", 12), Ok(10_000_000));
        assert_eq!(parse_scaled("0.0", 12), Ok(0));
        assert_eq!(parse_scaled("3e+0", 0), Ok(3));
    }

    #[test]
    fn sub_pico_rounds_half_up_once() {
        // 1.41953125e-07 USD/token = 141953.125 pico -> 141953
        assert_eq!(parse_scaled("1.41953125e-07", 12), Ok(141_953));
        // exactly half rounds up
        assert_eq!(parse_scaled("2.5e-12", 12), Ok(3));
        assert_eq!(parse_scaled("2.4999e-12", 12), Ok(2));
        assert_eq!(parse_scaled("4.9e-13", 12), Ok(0));
        assert_eq!(parse_scaled("5e-13", 12), Ok(1));
        assert_eq!(parse_scaled("1e-300", 12), Ok(0));
    }

    #[test]
    fn bad_text_is_rejected_with_a_reason() {
        assert_eq!(parse_scaled("", 6), Err(DecimalError::Syntax));
        assert_eq!(parse_scaled("abc", 6), Err(DecimalError::Syntax));
        assert_eq!(parse_scaled("1.2.3", 6), Err(DecimalError::Syntax));
        assert_eq!(parse_scaled("1e", 6), Err(DecimalError::Syntax));
        assert_eq!(parse_scaled("1 0", 6), Err(DecimalError::Syntax));
        assert_eq!(parse_scaled(".", 6), Err(DecimalError::Syntax));
        assert_eq!(parse_scaled("-1", 6), Err(DecimalError::Negative));
        assert_eq!(parse_scaled("1e30", 6), Err(DecimalError::TooLarge));
        assert_eq!(parse_scaled("1e999999999999", 6), Err(DecimalError::TooLarge));
        assert_eq!(parse_scaled("18446744073709.551616", 6), Err(DecimalError::TooLarge));
        assert_eq!(parse_scaled("1234567890123456789012345678901234567", 0), Err(DecimalError::TooPrecise));
    }

    #[test]
    fn largest_value_still_fits() {
        // The largest amount of every unit configuration scales to pico-USD; one pico more is
        // rejected, never wrapped: USD per 1M tokens, per 1,000 calls, per token.
        for (max, over, scale) in [
            ("18446744073709.551615", "18446744073709.551616", 6),
            ("18446744073.709551615", "18446744073.709551616", 9),
            ("18446744.073709551615", "18446744.073709551616", 12),
        ] {
            assert_eq!(parse_scaled(max, scale), Ok(u64::MAX), "{max}");
            assert_eq!(parse_scaled(over, scale), Err(DecimalError::TooLarge), "{over}");
        }
    }

    #[test]
    fn exact_parsing_refuses_what_rounding_would_change() {
        assert_eq!(parse_scaled_exact("12.50", 12), Ok(12_500_000_000_000));
        assert_eq!(parse_scaled_exact("0.000000000001", 12), Ok(1));
        assert_eq!(parse_scaled_exact("1.000000000000000", 12), Ok(1_000_000_000_000), "zeros past the unit are exact");
        assert_eq!(parse_scaled_exact("2.5e3", 12), Ok(2_500_000_000_000_000));
        assert_eq!(parse_scaled_exact("0.0000000000001", 12), Err(DecimalError::Inexact));
        assert_eq!(parse_scaled_exact("1.0000000000005", 12), Err(DecimalError::Inexact));
        assert_eq!(parse_scaled_exact("1e-300", 12), Err(DecimalError::Inexact));
        assert_eq!(parse_scaled_exact("0e-300", 12), Ok(0));
        assert_eq!(parse_scaled_exact("-1", 12), Err(DecimalError::Negative));
        assert_eq!(parse_scaled_exact("18446744.073709551616", 12), Err(DecimalError::TooLarge));
    }

    #[test]
    fn leading_zeros_do_not_count_as_significant() {
        let text = format!("0.{}1", "0".repeat(40));
        assert_eq!(parse_scaled(&text, 12), Ok(0));
    }

    proptest::proptest! {
        /// `m / 10^d` written in plain or exponent form scales exactly, whatever the spelling.
        #[test]
        fn spellings_of_one_value_agree(m in 0u64..1 << 40, d in 0u32..=6) {
            let digits = format!("{m:0>width$}", width = d as usize + 1);
            let split = digits.len() - d as usize;
            let plain = format!("{}.{}", &digits[..split], &digits[split..]);
            let expected = Ok(m * 10u64.pow(6 - d));
            proptest::prop_assert_eq!(parse_scaled(&plain, 6), expected);
            proptest::prop_assert_eq!(parse_scaled(&format!("{m}e-{d}"), 6), expected);
            proptest::prop_assert_eq!(parse_scaled(&format!("{m}e-{}", d + 6), 12), expected);
        }
    }

    #[test]
    fn f64_round_trips_to_the_written_decimal() {
        for (written, value) in [("2.5e-6", 2.5e-06), ("7.5e-8", 7.5e-08), ("1.1e-6", 1.1e-6), ("1.38e-7", 1.38e-07)] {
            assert_eq!(f64_text(value).as_str(), written);
        }
        assert_eq!(parse_scaled(f64_text(0.075).as_str(), 6), Ok(75_000));
        assert_eq!(parse_scaled(f64_text(f64::MIN_POSITIVE).as_str(), 12), Ok(0));
        assert_eq!(f64_text(0.075).as_str(), "0.075");
        assert_eq!(parse_scaled(f64_text(1e21).as_str(), 0), Err(DecimalError::TooLarge));
        assert_eq!(parse_scaled(f64_text(2.0).as_str(), 6), Ok(2_000_000));
        assert_eq!(f64_text(f64::NAN).as_str(), "");
    }
}
