//! Spans of time as a spec writes them: `250ms`, `30s`, `5m`, `2h`, `1d`,
//! or a bare integer of milliseconds.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest span a spec may give: 30 days.
pub const MAX_SPAN_MS: u64 = 30 * 86_400_000;

const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// A span of time in whole milliseconds, at most [`MAX_SPAN_MS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(u64);

impl Span {
    pub fn from_ms(ms: u64) -> Result<Span, String> {
        if ms > MAX_SPAN_MS {
            return Err(format!("{ms} ms is longer than the limit of 30d"));
        }
        Ok(Span(ms))
    }

    pub fn ms(self) -> u64 {
        self.0
    }

    /// As a signed count of ms, to add to a unix time.
    pub fn ms_i64(self) -> i64 {
        // At most 30 days: always fits.
        self.0 as i64
    }

    /// Reads `30s`, `250ms`, `1h` … or digits alone (milliseconds).
    pub fn parse(text: &str) -> Result<Span, String> {
        let t = text.trim();
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        let (number, unit) = t.split_at(digits);
        if number.is_empty() {
            return Err(format!(
                "{text:?} is not a span; write a whole number and a unit: 250ms, 30s, 5m, 2h, 1d"
            ));
        }
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{text:?} is longer than the limit of 30d"))?;
        let per = match unit {
            "" => 1,
            u => UNITS
                .iter()
                .find(|(name, _)| *name == u)
                .map(|(_, per)| *per)
                .ok_or_else(|| {
                    format!("{text:?} has the unit {u:?}; the units are ms, s, m, h and d")
                })?,
        };
        let ms = n
            .checked_mul(per)
            .ok_or_else(|| format!("{text:?} is longer than the limit of 30d"))?;
        Span::from_ms(ms).map_err(|_| format!("{text:?} is longer than the limit of 30d"))
    }
}

impl std::fmt::Display for Span {
    /// In the largest unit that divides it: `90s`, `2h`, `1500ms`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let (unit, per) = UNITS
            .iter()
            .find(|(_, per)| self.0.is_multiple_of(*per))
            .expect("ms divides everything");
        write!(f, "{}{unit}", self.0 / per)
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Ms(u64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a span such as \"30s\" or a whole number of ms")
        })? {
            Raw::Ms(ms) => Span::from_ms(ms),
            Raw::Text(t) => Span::parse(&t),
        }
        .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_each_unit() {
        for (text, ms, back) in [
            ("250ms", 250, "250ms"),
            ("30s", 30_000, "30s"),
            ("90s", 90_000, "90s"),
            ("5m", 300_000, "5m"),
            ("2h", 7_200_000, "2h"),
            ("1d", 86_400_000, "1d"),
            ("1500", 1_500, "1500ms"),
            ("60m", 3_600_000, "1h"),
        ] {
            let s = Span::parse(text).unwrap();
            assert_eq!(s.ms(), ms, "{text}");
            assert_eq!(s.to_string(), back);
            assert_eq!(Span::parse(&s.to_string()).unwrap(), s);
        }
    }

    #[test]
    fn refuses_what_is_not_a_span_naming_the_limit() {
        assert!(Span::parse("").unwrap_err().contains("not a span"));
        assert!(Span::parse("s").unwrap_err().contains("not a span"));
        assert!(Span::parse("-1s").unwrap_err().contains("not a span"));
        assert!(Span::parse("3w").unwrap_err().contains("ms, s, m, h and d"));
        assert!(Span::parse("31d").unwrap_err().contains("30d"));
        assert!(
            Span::parse("99999999999999999999")
                .unwrap_err()
                .contains("30d")
        );
        assert!(
            Span::parse("18446744073709551615d")
                .unwrap_err()
                .contains("30d")
        );
        let e = serde_json::from_str::<Span>("true")
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected a span"), "{e}");
        assert_eq!(serde_json::from_str::<Span>("1000").unwrap().ms(), 1000);
    }
}
