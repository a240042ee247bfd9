//! Enums named by strings, one way everywhere: an enum derives
//! `strum::IntoStaticStr`, `strum::EnumString` and `strum::VariantArray`
//! with the same case rule serde uses for it (`snake_case` for most), and
//! [`Named`] gives it `as_str`, `parse` and `all`. The strings are written
//! once, by the derive; nothing matches on them by hand.

use std::str::FromStr;

/// `as_str`, `parse` and `all` for an enum that derives its names.
pub trait Named: Copy + Into<&'static str> + FromStr + strum::VariantArray + 'static {
    /// Its name (what serde writes).
    fn as_str(self) -> &'static str {
        self.into()
    }

    /// The variant with this name, if any.
    fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    /// Every variant, in declaration order.
    fn all() -> &'static [Self] {
        Self::VARIANTS
    }
}

impl<T: Copy + Into<&'static str> + FromStr + strum::VariantArray + 'static> Named for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(
        Debug, Clone, Copy, PartialEq, strum::IntoStaticStr, strum::EnumString, strum::VariantArray,
    )]
    #[strum(serialize_all = "snake_case")]
    enum Sample {
        First,
        SecondOne,
    }

    #[test]
    fn names_round_trip() {
        for v in Sample::all() {
            assert_eq!(Sample::parse(v.as_str()), Some(*v));
        }
        assert_eq!(Sample::SecondOne.as_str(), "second_one");
        assert_eq!(Sample::parse("Second_One"), None);
    }
}
