//! A session whose orders go to a venue in a process of its own
//! (`oshal venue`), reached as the integration architecture reaches any
//! outside system: each order is a `tool` ticket (`submit_order` of the
//! session's venue connector) that a bot runs through the auth gate, the
//! connector runtime and the broker, which alone holds the venue's API
//! key. The ticket's answer is the venue's report, which the desk checks
//! whole before posting any of it ([`Desk::on_report`]).
//!
//! An order whose ticket brings no report (the venue down or restarting,
//! a timeout) stays `reconciling`: its outcome is unknown and never
//! assumed. It is asked again under the same client order id, by a new
//! ticket (`desk/<session>/order/<client id>/<try>`) after a backoff, until
//! the venue answers; the venue answers an order it already took with its
//! first report, so nothing fills twice. A venue that refuses the order
//! (a 4xx other than for the key) stops the session with its answer.
//!
//! After a restart, once the runner is past where it was, and after an
//! order that took more than one ticket, a `list_orders` ticket compares
//! the desk's orders and fills with the venue's ([`Desk::differences`])
//! and the session records the differences, or that there are none.
//!
//! [`Desk::on_report`]: oshal_trading::desk::Desk::on_report
//! [`Desk::differences`]: oshal_trading::desk::Desk::differences

use std::time::Duration;

use oshal_trading::desk::Due;
use oshal_trading::venue::Report;
use oshal_trading::venue::wire::{WireOrder, WireReport};
use serde_json::json;

use super::{Phase, Runner, Stop};
use crate::controller::CoreEvent;
use crate::store::TicketView;
use crate::ticket::TicketState;
use crate::trading::view::ReconciliationView;

/// The venue connector's operations the desk uses.
pub(crate) const SUBMIT_ORDER: &str = "submit_order";
pub(crate) const LIST_ORDERS: &str = "list_orders";
/// What the bot is asked about the venue's answer.
const ORDER_PROMPT: &str = "In one sentence: what did the venue do with this order?";
/// The longest wait between tickets for an order whose report is not back.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

type Events = tokio::sync::broadcast::Receiver<CoreEvent>;

/// Why a ticket brought no report.
enum NoReport {
    /// The venue (or the way to it) did not answer: ask again.
    Unknown(String),
    /// The venue refused the order, or its answer is not a report.
    Refused(String),
}

impl Runner {
    /// Takes order `due` (the `k`th of its quote) to the venue through
    /// connector `venue` and posts the report, asking until one comes.
    pub(super) async fn execute_elsewhere(
        &mut self,
        venue: &str,
        due: Due,
        k: u32,
        events: &mut Events,
    ) -> Result<(), Stop> {
        let s = self.session.clone();
        let client = due.order.client_order_id.clone();
        let wire = WireOrder::new(&due.order, &s.spec.instrument, s.spec.seed, due.ts_ms);
        let mut params = serde_json::to_value(&wire).expect("an order serializes");
        params["account"] = s.id.clone().into();
        let payload = json!({
            "connector": venue, "operation": SUBMIT_ORDER, "params": params, "prompt": ORDER_PROMPT,
        });
        let mut backoff = Duration::from_secs(1);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let key = format!("desk/{}/order/{client}/{attempt}", s.id);
            let (ticket, new) = self
                .submit_ticket("tool", payload.clone(), key, &format!("order {client}"))
                .await?;
            self.caught_up |= new;
            {
                let mut live = s.live();
                live.waiting_on = Some(ticket);
                live.orders
                    .entry(client.clone())
                    .or_default()
                    .tickets
                    .push(ticket);
                live.reconciling.entry(client.clone()).or_default();
            }
            let view = self.wait(ticket, Phase::AtVenue(k), events).await?;
            let report = venue_report(&view).and_then(|w| {
                w.parse(&s.model.instrument)
                    .map_err(|e| NoReport::Refused(format!("the venue's report: {e}")))
            });
            let unknown = {
                let mut live = s.live();
                live.waiting_on = None;
                live.orders.entry(client.clone()).or_default().cost_nusd += view.cost.cost_nusd;
                match report {
                    Ok(report) => {
                        live.desk
                            .on_report(report)
                            .map_err(|e| format!("the venue's report of {client}: {e}"))?;
                        live.reconciling.remove(&client);
                        None
                    }
                    Err(NoReport::Refused(e)) => {
                        return Err(Stop::Failed(format!(
                            "order {client} at {venue}: {e} (ticket {ticket})"
                        )));
                    }
                    Err(NoReport::Unknown(e)) => {
                        live.reconciling.insert(client.clone(), Some(e.clone()));
                        Some(e)
                    }
                }
            };
            let Some(error) = unknown else {
                if attempt > 1 {
                    self.reconcile.get_or_insert("retried_order");
                }
                return Ok(());
            };
            tracing::warn!(session = %s.id, order = %client, %ticket, %error,
                "no report from the venue; the order is reconciling");
            // A ticket that ended before a restart is not waited for again.
            if new {
                self.backoff(backoff, Phase::AtVenue(k)).await?;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    /// Sleeps `d`, taking kill switch pulls (at `phase`) meanwhile.
    async fn backoff(&mut self, d: Duration, phase: Phase) -> Result<(), Stop> {
        let sleep = tokio::time::sleep(d);
        tokio::pin!(sleep);
        loop {
            let takes = self.takes_controls();
            tokio::select! {
                () = self.cancel.cancelled() => return Err(Stop::Cancelled),
                Some(cmd) = self.commands.recv(), if takes => self.apply(cmd, phase).await?,
                () = &mut sleep => return Ok(()),
            }
        }
    }

    /// Compares the desk's orders and fills with the venue's (a
    /// `list_orders` ticket keyed by the point in the quote stream, so a
    /// restart at the same point finds it again) and records the result.
    pub(super) async fn reconcile(
        &mut self,
        venue: &str,
        reason: &'static str,
        events: &mut Events,
    ) -> Result<(), Stop> {
        let s = self.session.clone();
        let at = s.live().desk.events();
        let payload = json!({
            "connector": venue, "operation": LIST_ORDERS, "params": {"account": s.id},
            "prompt": "In one sentence: how many orders does the venue hold for this account?",
        });
        let key = format!("desk/{}/reconcile/{at}", s.id);
        let (ticket, _) = self
            .submit_ticket("tool", payload, key, "the reconciliation ticket")
            .await?;
        let view = self.wait(ticket, Phase::Between, events).await?;
        let mut live = s.live();
        let listed = venue_body(&view).and_then(|body| {
            let orders = body["orders"]
                .as_array()
                .ok_or_else(|| NoReport::Refused("the venue's list has no `orders`".into()))?;
            orders
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    serde_json::from_value::<WireReport>(o["report"].clone())
                        .map_err(|e| e.to_string())
                        .and_then(|w| w.parse(&s.model.instrument).map_err(|e| e.to_string()))
                        .map_err(|e| NoReport::Refused(format!("orders[{i}].report: {e}")))
                })
                .collect::<Result<Vec<Report>, _>>()
        });
        let (orders, differences) = match listed {
            Ok(reports) => live.desk.differences(&reports),
            Err(NoReport::Unknown(e) | NoReport::Refused(e)) => (
                0,
                vec![format!("the venue's orders could not be read: {e}")],
            ),
        };
        if differences.is_empty() {
            tracing::info!(session = %s.id, orders, reason, "reconciled with the venue: the books agree");
        } else {
            tracing::warn!(session = %s.id, ?differences, reason, "reconciled with the venue: the books differ");
        }
        let at_ms = live.sim_ms;
        live.reconciliations.push(ReconciliationView {
            ticket,
            reason: reason.to_owned(),
            at_ms,
            orders,
            differences,
        });
        Ok(())
    }
}

/// The body of the venue's answer a `tool` ticket carries.
fn venue_body(view: &TicketView) -> Result<serde_json::Value, NoReport> {
    if view.state != TicketState::Succeeded {
        let error = view
            .error
            .clone()
            .unwrap_or_else(|| format!("the ticket ended {:?}", view.state));
        return Err(match refused_status(&error) {
            Some(status) if !matches!(status, 401 | 403 | 408 | 429) => NoReport::Refused(error),
            _ => NoReport::Unknown(error),
        });
    }
    let text = view
        .result
        .as_ref()
        .and_then(|r| r["text"].as_str())
        .ok_or_else(|| NoReport::Refused("the ticket succeeded without an answer".into()))?;
    let answer: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| NoReport::Refused(format!("the answer does not parse: {e}")))?;
    Ok(answer["tool"]["body"].clone())
}

/// The venue's report a `submit_order` ticket carries.
fn venue_report(view: &TicketView) -> Result<WireReport, NoReport> {
    let body = venue_body(view)?;
    serde_json::from_value(body)
        .map_err(|e| NoReport::Refused(format!("the venue's answer is not a report: {e}")))
}

/// The HTTP status a connector's refusal names (`… answered 409`): the
/// outside system said no, as opposed to not answering.
fn refused_status(error: &str) -> Option<u16> {
    let at = error.rfind(" answered ")? + " answered ".len();
    let digits: String = error[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok().filter(|s| (400..500).contains(s))
}

#[cfg(test)]
mod tests {
    use super::refused_status;

    #[test]
    fn a_refusal_is_told_from_no_answer_by_the_status_it_names() {
        let refused = "venue-paper.submit_order: venue-paper.submit_order answered 409";
        assert_eq!(refused_status(refused), Some(409));
        assert_eq!(
            refused_status("venue-paper.submit_order: answered 503"),
            None
        );
        assert_eq!(
            refused_status("the outcome of write k is unknown (connection refused)"),
            None
        );
    }
}
