//! A `signal` ticket: the bot runs a named strategy (`oshal-trading`) over
//! a window of the simulated venue's quotes drawn from the ticket's seed,
//! then asks its model to explain the view in one sentence. The result is
//! `{"insight": …, "explanation": …}`: LEAN's Insight with its reference
//! price and the hash of the bars it read, which is a pure function of the
//! payload, so a replay needs no model call; the explanation's model cost
//! is in the ledger like any ticket's.

use oshal_trading::market::{self, PriceModel};
use oshal_trading::signal::{self, Insight, Strategy};

use super::{BotContext, Outcome};
use crate::model::ChatRequest;
use crate::ticket::{ChatPayload, SignalPayload, TicketError, Work};

fn invalid(field: &'static str, reason: String) -> TicketError {
    TicketError::Invalid { field, reason }
}

/// The strategy a payload names, with its parameters checked.
fn strategy(p: &SignalPayload) -> Result<Strategy, TicketError> {
    let s: Strategy = serde_json::from_value(p.strategy.clone()).map_err(|e| {
        invalid(
            "payload.strategy",
            format!("{e}; the strategies are ema_cross {{fast, slow}}, z_score {{window, entry_z}} and breakout {{window}}"),
        )
    })?;
    s.check()
        .map_err(|e| invalid("payload.strategy", e.to_string()))?;
    if (p.bars as usize) < s.needs() {
        return Err(invalid(
            "payload.bars",
            format!(
                "{} reads {} bars; {} asked for",
                s.name(),
                s.needs(),
                p.bars
            ),
        ));
    }
    Ok(s)
}

/// The listed instrument a payload names, with how its price moves.
fn instrument(p: &SignalPayload) -> Result<PriceModel, TicketError> {
    market::listed(&p.instrument).ok_or_else(|| {
        let listed: Vec<String> = market::sim_models()
            .into_iter()
            .map(|m| m.instrument.id)
            .collect();
        invalid(
            "payload.instrument",
            format!(
                "{:?} is not listed; the venue lists {}",
                p.instrument,
                listed.join(", ")
            ),
        )
    })
}

/// What the controller asks before it admits a ticket: a signal's strategy
/// and instrument are ones the desk knows, with a window they fit in.
pub fn check(work: &Work) -> Result<(), TicketError> {
    if let Work::Signal(p) = work {
        strategy(p)?;
        instrument(p)?;
    }
    Ok(())
}

/// The insight a payload gives: the same payload, the same insight.
pub fn compute(p: &SignalPayload) -> Result<Insight, String> {
    let s = strategy(p).map_err(|e| e.to_string())?;
    let model = instrument(p).map_err(|e| e.to_string())?;
    let listed = model.instrument.clone();
    let bar_ms = i64::from(p.bar_seconds) * 1_000;
    let steps = p.bars as usize * p.bar_seconds as usize;
    let quotes = market::seconds(p.seed, model, steps);
    let bars = market::bars(&quotes, &listed, bar_ms);
    signal::generate(&s, &bars, bar_ms).map_err(|e| e.to_string())
}

/// Runs a signal ticket: the insight (off the async threads: it is CPU
/// work), then the model's one-sentence explanation.
pub(super) async fn run(cx: &BotContext, p: &SignalPayload) -> Outcome {
    let payload = p.clone();
    let insight = match tokio::task::spawn_blocking(move || compute(&payload)).await {
        Ok(Ok(insight)) => insight,
        Ok(Err(error)) => {
            return Outcome::Failed {
                error,
                retryable: false,
            };
        }
        Err(e) => {
            return Outcome::Failed {
                error: format!("the signal's computation stopped: {e}"),
                retryable: true,
            };
        }
    };
    let prompt = format!(
        "The {} strategy on {} says {:?} with confidence {:.2} and expected move {:.4} \
         from {}. Explain this view to a trader in one sentence.",
        insight.source,
        insight.instrument,
        insight.direction,
        insight.confidence,
        insight.magnitude,
        insight.reference_price,
    );
    let chat = ChatRequest::from_payload(&ChatPayload {
        prompt,
        system: None,
        max_tokens: Some(64),
        response_schema: None,
    });
    match cx.spec.model.chat(&chat).await {
        Ok(reply) => Outcome::Succeeded {
            text: serde_json::json!({ "insight": insight, "explanation": reply.text }).to_string(),
            usage: reply.usage,
            reported_model: reply.reported_model,
            // The explanation stopped at its token limit.
            cut: reply.cut,
        },
        Err(e) => Outcome::Failed {
            retryable: e.retryable(),
            error: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(strategy: serde_json::Value) -> SignalPayload {
        SignalPayload {
            strategy,
            instrument: "ETHUSD.SIM".into(),
            seed: 7,
            bar_seconds: 60,
            bars: 120,
        }
    }

    #[test]
    fn a_signal_is_a_pure_function_of_its_payload() {
        let p = payload(serde_json::json!({"name": "ema_cross", "fast": 5, "slow": 20}));
        let a = compute(&p).unwrap();
        assert_eq!(a, compute(&p).unwrap());
        assert_eq!(a.instrument, "ETHUSD.SIM");
        assert_eq!(a.source, "ema_cross");
        let other = compute(&SignalPayload { seed: 8, ..p }).unwrap();
        assert_ne!(a.inputs_hash, other.inputs_hash);
    }

    #[test]
    fn a_strategy_or_instrument_the_desk_does_not_know_is_refused_by_field() {
        let field = |p: SignalPayload| match check(&Work::Signal(p)) {
            Err(TicketError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(payload(serde_json::json!({"name": "martingale"}))),
            "payload.strategy"
        );
        assert_eq!(
            field(payload(
                serde_json::json!({"name": "ema_cross", "fast": 20, "slow": 5})
            )),
            "payload.strategy"
        );
        assert_eq!(
            field(SignalPayload {
                bars: 10,
                ..payload(serde_json::json!({"name": "breakout", "window": 20}))
            }),
            "payload.bars"
        );
        assert_eq!(
            field(SignalPayload {
                instrument: "DOGE.SIM".into(),
                ..payload(serde_json::json!({"name": "breakout", "window": 20}))
            }),
            "payload.instrument"
        );
    }
}
