//! Cost: the versioned price table, exact money, and ledger entries.
//!
//! Owns how tokens become dollars. The controller — never a bot — prices a
//! finished attempt here and writes one ledger row keyed by (ticket, attempt),
//! so a retry or a duplicate delivery can never count twice. Money is integer
//! nano-dollars end to end, so sums are exact. Pure logic; start with
//! [`PriceTable::price`].

use serde::{Deserialize, Serialize};
use specta::Type;
use std::collections::BTreeMap;

use crate::clock::UnixMs;
use crate::ticket::{BotId, ModelId, TenantId, TicketId};

/// The price table that ships with Oshal.
pub const DEFAULT_PRICES: &str = include_str!("../../../assets/prices.toml");

/// Nano-dollars (1e-9 USD) per dollar.
pub const NANOS_PER_USD: i64 = 1_000_000_000;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CostError {
    #[error("price table: {0}")]
    Parse(String),
    #[error("price table: models.{model}.{field} = {value:?}: {reason}")]
    BadPrice {
        model: String,
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error(
        "model {0} has no price in the price table (version {1}); refusing it (start with --allow-unpriced to record it at $0, flagged)"
    )]
    Unpriced(ModelId, String),
}

/// Tokens a model call used, as the model reported them.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema,
)]
pub struct Usage {
    pub input_tokens: u32,
    pub output_tokens: u32,
}

/// A price in micro-dollars per million tokens (exact for prices with up to
/// six decimal places of a dollar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelPrice {
    pub input_micro_usd_per_mtok: i64,
    pub output_micro_usd_per_mtok: i64,
}

impl ModelPrice {
    /// Nano-dollars for `usage`, rounded half up per direction.
    pub fn cost_nusd(&self, usage: Usage) -> i64 {
        // tokens × µUSD/Mtok = 1e-12 USD; /1000 → nano-dollars.
        let part = |tokens: u32, p: i64| (i64::from(tokens) * p + 500) / 1000;
        part(usage.input_tokens, self.input_micro_usd_per_mtok)
            + part(usage.output_tokens, self.output_micro_usd_per_mtok)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    version: String,
    models: BTreeMap<String, PriceEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceEntry {
    input_per_mtok_usd: String,
    output_per_mtok_usd: String,
}

/// A versioned table of prices per model.
#[derive(Debug, Clone)]
pub struct PriceTable {
    version: String,
    prices: BTreeMap<ModelId, ModelPrice>,
    allow_unpriced: bool,
}

/// What the controller needs to write a ledger row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priced {
    pub cost_nusd: i64,
    pub unpriced: bool,
}

impl PriceTable {
    pub fn parse(text: &str) -> Result<Self, CostError> {
        let file: PriceFile = toml::from_str(text).map_err(|e| CostError::Parse(e.to_string()))?;
        if file.version.trim().is_empty() {
            return Err(CostError::Parse("version must not be empty".into()));
        }
        let mut prices = BTreeMap::new();
        for (name, entry) in file.models {
            let model = ModelId::parse(&name)
                .map_err(|e| CostError::Parse(format!("models.{name}: {e}")))?;
            let price = ModelPrice {
                input_micro_usd_per_mtok: parse_usd(
                    &name,
                    "input_per_mtok_usd",
                    &entry.input_per_mtok_usd,
                )?,
                output_micro_usd_per_mtok: parse_usd(
                    &name,
                    "output_per_mtok_usd",
                    &entry.output_per_mtok_usd,
                )?,
            };
            prices.insert(model, price);
        }
        Ok(Self {
            version: file.version,
            prices,
            allow_unpriced: false,
        })
    }

    pub fn builtin() -> Self {
        Self::parse(DEFAULT_PRICES).expect("the shipped price table parses")
    }

    /// Record unpriced models at $0 (flagged) instead of refusing them.
    pub fn allow_unpriced(mut self, allow: bool) -> Self {
        self.allow_unpriced = allow;
        self
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// Fails closed for a model with no price unless unpriced models are allowed.
    pub fn check(&self, model: &ModelId) -> Result<(), CostError> {
        if self.prices.contains_key(model) || self.allow_unpriced {
            Ok(())
        } else {
            Err(CostError::Unpriced(model.clone(), self.version.clone()))
        }
    }

    pub fn price(&self, model: &ModelId, usage: Usage) -> Result<Priced, CostError> {
        match self.prices.get(model) {
            Some(p) => Ok(Priced {
                cost_nusd: p.cost_nusd(usage),
                unpriced: false,
            }),
            None if self.allow_unpriced => Ok(Priced {
                cost_nusd: 0,
                unpriced: true,
            }),
            None => Err(CostError::Unpriced(model.clone(), self.version.clone())),
        }
    }
}

/// Parses a non-negative decimal dollar amount with at most six decimals into
/// micro-dollars, exactly.
fn parse_usd(model: &str, field: &'static str, s: &str) -> Result<i64, CostError> {
    let bad = |reason| CostError::BadPrice {
        model: model.to_owned(),
        field,
        value: s.to_owned(),
        reason,
    };
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad(
            "must be a non-negative decimal number such as \"0.15\"",
        ));
    }
    if frac.len() > 6 {
        return Err(bad("at most 6 decimal places"));
    }
    if whole.len() > 9 {
        return Err(bad("at most 999999999 USD per million tokens"));
    }
    let whole: i64 = whole.parse().map_err(|_| bad("not a number"))?;
    let frac_micro: i64 = format!("{frac:0<6}")
        .parse()
        .map_err(|_| bad("not a number"))?;
    Ok(whole * 1_000_000 + frac_micro)
}

/// Converts nano-dollars to dollars for display.
pub fn usd(nusd: i64) -> f64 {
    nusd as f64 / NANOS_PER_USD as f64
}

/// One ledger row: one finished attempt of one ticket, priced once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct LedgerEntry {
    pub ticket: TicketId,
    pub attempt: u32,
    pub tenant: TenantId,
    pub bot: BotId,
    pub model: ModelId,
    pub input_tokens: u32,
    pub output_tokens: u32,
    #[specta(type = specta_typescript::Number)]
    pub cost_nusd: i64,
    pub unpriced: bool,
    pub price_version: String,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub at_ms: UnixMs,
}

/// A cost aggregate over ledger rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct CostTotals {
    #[specta(type = specta_typescript::Number)]
    pub attempts: i64,
    #[specta(type = specta_typescript::Number)]
    pub input_tokens: i64,
    #[specta(type = specta_typescript::Number)]
    pub output_tokens: i64,
    #[specta(type = specta_typescript::Number)]
    pub cost_nusd: i64,
    pub usd: f64,
}

/// One group of a cost summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct CostGroup {
    pub key: String,
    #[serde(flatten)]
    pub totals: CostTotals,
}

/// Spend broken down the ways an operator asks about it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct CostSummary {
    pub price_version: String,
    pub total: CostTotals,
    pub by_bot: Vec<CostGroup>,
    pub by_tenant: Vec<CostGroup>,
    pub by_model: Vec<CostGroup>,
    /// Day in UTC, `YYYY-MM-DD`.
    pub by_day: Vec<CostGroup>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(s: &str) -> ModelId {
        ModelId::parse(s).unwrap()
    }

    #[test]
    fn shipped_table_prices_builtin() {
        let t = PriceTable::builtin();
        assert_eq!(t.version(), "2026-11-01");
        // 1M input at $0.05 + 1M output at $0.20 = $0.25
        let p = t
            .price(
                &model("builtin"),
                Usage {
                    input_tokens: 1_000_000,
                    output_tokens: 1_000_000,
                },
            )
            .unwrap();
        assert_eq!(p.cost_nusd, 250_000_000);
        assert!(!p.unpriced);
    }

    #[test]
    fn prices_are_exact_for_small_counts() {
        let t = PriceTable::parse(
            "version='v'\n[models.m]\ninput_per_mtok_usd='0.15'\noutput_per_mtok_usd='0.6'",
        )
        .unwrap();
        // 7 × 0.15 µUSD = 1.05 µUSD = 1050 nUSD; 3 × 0.6 µUSD = 1800 nUSD.
        let p = t
            .price(
                &model("m"),
                Usage {
                    input_tokens: 7,
                    output_tokens: 3,
                },
            )
            .unwrap();
        assert_eq!(p.cost_nusd, 2_850);
    }

    #[test]
    fn unpriced_models_fail_closed_by_default() {
        let t = PriceTable::builtin();
        let err = t.price(&model("mystery"), Usage::default()).unwrap_err();
        assert!(matches!(err, CostError::Unpriced(..)));
        assert!(err.to_string().contains("mystery"));
        let lenient = t.allow_unpriced(true);
        assert_eq!(
            lenient
                .price(
                    &model("mystery"),
                    Usage {
                        input_tokens: 5,
                        output_tokens: 5
                    }
                )
                .unwrap(),
            Priced {
                cost_nusd: 0,
                unpriced: true
            }
        );
    }

    #[test]
    fn bad_prices_name_model_and_field() {
        for (price, reason) in [
            ("-1", "non-negative"),
            ("1.1234567", "6 decimal"),
            ("abc", "non-negative"),
            ("", "non-negative"),
        ] {
            let text = format!(
                "version='v'\n[models.m]\ninput_per_mtok_usd='{price}'\noutput_per_mtok_usd='1'"
            );
            let err = PriceTable::parse(&text).unwrap_err().to_string();
            assert!(
                err.contains("models.m.input_per_mtok_usd") && err.contains(reason),
                "{err}"
            );
        }
        assert!(
            PriceTable::parse("version='v'\n[models.m]\ninput_per_mtok_usd='1'").is_err(),
            "missing output price"
        );
        assert!(
            PriceTable::parse(
                "version='v'\n[models.m]\ninput_per_mtok_usd='1'\noutput_per_mtok_usd='1'\nextra=1"
            )
            .is_err()
        );
    }
}
