//! An `investigate` ticket (Gather): the planned read-only calls made in
//! order through the connector gate, each kept as evidence (the call, its
//! parameters, its status, its answer and a content hash, and the same
//! lookup for a person to run again), within the ticket's bounds; then the
//! diagnosis those answers support and, if the ticket allows tokens, the
//! model's narrative. The ticket's result is the [`Findings`] as JSON.
//!
//! The box is the broker's: the ticket holds only the read grants the
//! controller bound to it, so a call outside them is denied and a write
//! answers `approval_required`, whatever the plan or the model says. The
//! controller trusts nothing here it can check: it computes the diagnosis
//! again from the evidence.

use oshal_ops::diagnose::{Diagnosis, diagnose};
use oshal_ops::evidence::{Bounds, Evidence, Spent, ToolStatus};
use oshal_ops::gather::{Tool, observe, status_of};
use oshal_ops::investigation::{Findings, keepable};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{BotContext, Outcome};
use crate::connector::call::CallRef;
use crate::connector::runtime::{ToolError, ToolRequest};
use crate::cost::Usage;
use crate::model::ChatRequest;
use crate::ticket::{InvestigatePayload, TenantId, TicketId};

/// The most tokens the narrative may ask the model for.
const MAX_NARRATIVE_TOKENS: u32 = 256;

/// A call's evidence from what the gate and the system answered.
fn evidence(
    n: usize,
    tenant: &TenantId,
    operation: &str,
    params: &Value,
    answer: Result<Value, &ToolError>,
    at_ms: i64,
) -> Evidence {
    let (status, result) = match answer {
        Ok(body) => {
            let body = keepable(body);
            (status_of(&body), body)
        }
        Err(e @ ToolError::ApprovalRequired(_)) => (
            ToolStatus::ApprovalRequired,
            json!({"error": e.to_string()}),
        ),
        Err(e) => (
            ToolStatus::Error,
            json!({"error": e.to_string(), "retryable": e.retryable()}),
        ),
    };
    let replay = match <Tool as crate::name::Named>::parse(operation) {
        Some(tool) => tool.replay(tenant.as_str(), params),
        None => format!("{operation} {params}"),
    };
    Evidence::record(
        format!("E-{n}"),
        operation,
        params.clone(),
        status,
        result,
        replay,
        at_ms,
    )
}

/// Runs the ticket to its findings.
pub(super) async fn run(
    cx: &BotContext,
    p: &InvestigatePayload,
    (tenant, ticket, attempt): (&TenantId, TicketId, u32),
    cancel: &CancellationToken,
) -> Outcome {
    let Some(tools) = &cx.spec.tools else {
        return Outcome::Failed {
            error: format!(
                "bot {} has no connector runtime; investigate tickets run where one is configured",
                cx.spec.id
            ),
            retryable: false,
        };
    };
    // The calls spend no model tokens; the tokens bound the narrative.
    let bounds = Bounds {
        max_steps: p.max_steps,
        max_wall_ms: p.max_wall_ms,
        max_tokens: u32::MAX,
    };
    let mut spent = Spent::starting(cx.clock.now_ms());
    let mut found = Vec::with_capacity(p.calls.len());
    let mut stopped = None;
    for (i, planned) in p.calls.iter().enumerate() {
        if let Err(why) = spent.may_step(&bounds, cx.clock.now_ms()) {
            stopped = Some(format!("stopped before call {}: {why}", i + 1));
            break;
        }
        spent.steps += 1;
        let request = ToolRequest {
            call: CallRef {
                bot: cx.spec.id.clone(),
                tenant: Some(tenant.clone()),
                ticket,
                attempt,
                connector: p.connector.clone(),
                operation: planned.operation.clone(),
            },
            params: planned.params.clone(),
            call_index: i as u32,
            dry_run: false,
        };
        let left = (p.max_wall_ms as i64 - (cx.clock.now_ms() - spent.started_ms)).max(1);
        let answer = tokio::time::timeout(
            std::time::Duration::from_millis(left as u64),
            tools.call(&request, cancel),
        )
        .await;
        let answer = match answer {
            Err(_) => Err(ToolError::Transport(format!(
                "no answer within the investigation's {} ms",
                p.max_wall_ms
            ))),
            Ok(Err(ToolError::Cancelled)) => return Outcome::Cancelled,
            Ok(a) => a,
        };
        found.push(evidence(
            i + 1,
            tenant,
            &planned.operation,
            &planned.params,
            answer.as_ref().map(|r| r.body.clone()),
            cx.clock.now_ms(),
        ));
    }
    let diagnosis = diagnose(&p.alert, &observe(&found));
    let (narrative, order, usage, reported_model) = if p.max_tokens == 0 {
        (None, Vec::new(), Usage::default(), None)
    } else {
        // Within what is left of the wall bound: a slow model costs the
        // narrative, never the findings.
        let left = (p.max_wall_ms as i64 - (cx.clock.now_ms() - spent.started_ms)).max(1);
        let narrated = tokio::time::timeout(
            std::time::Duration::from_millis(left as u64),
            narrate(cx, &p.alert, &diagnosis, p.max_tokens),
        )
        .await;
        let none = |why: String| {
            let said = format!("(no narrative: {why})");
            let said = crate::text::clip(&said, oshal_ops::investigation::MAX_NARRATIVE_BYTES);
            (Some(said.to_owned()), Vec::new(), Usage::default(), None)
        };
        match narrated {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => none(e.to_string()),
            Err(_) => none(format!(
                "the model did not answer within the investigation's {} ms",
                p.max_wall_ms
            )),
        }
    };
    let findings = Findings {
        evidence: found,
        narrative,
        order,
        stopped,
    };
    Outcome::Succeeded {
        text: serde_json::to_string(&findings).expect("findings serialize"),
        usage,
        reported_model,
        cut: false,
    }
}

type Narrated = (Option<String>, Vec<String>, Usage, Option<String>);

/// The model's account of the diagnosis, and its order of the causes
/// (`ORDER: kind:subject, …` on a line of its own), which the controller
/// applies only among the causes found.
async fn narrate(
    cx: &BotContext,
    alert: &str,
    d: &Diagnosis,
    max_tokens: u32,
) -> Result<Narrated, crate::model::ModelError> {
    let causes: Vec<String> = d
        .causes
        .iter()
        .map(|c| {
            let evidence: Vec<&str> = c
                .supports
                .iter()
                .flat_map(|s| s.evidence.iter().map(String::as_str))
                .collect();
            format!(
                "- {}:{} (score {}, evidence {})",
                <&str>::from(c.kind),
                c.subject,
                c.score,
                evidence.join(", ")
            )
        })
        .collect();
    let findings: Vec<String> = d
        .findings
        .iter()
        .map(|f| format!("- {} [{}]", f.text, f.evidence.join(", ")))
        .collect();
    let prompt = format!(
        "Alert {alert}: {}\n\nFindings:\n{}\n\nPossible causes, ranked:\n{}\n\n\
         In two or three sentences, say what most likely happened, citing evidence ids. \
         Claim nothing the findings do not show. If you would rank the causes differently, \
         end with a line `ORDER: kind:subject, ...` using only the causes above.",
        d.meaning,
        findings.join("\n"),
        if causes.is_empty() {
            "(none: inconclusive)".to_owned()
        } else {
            causes.join("\n")
        }
    );
    let chat = ChatRequest::from_payload(&crate::ticket::ChatPayload {
        prompt,
        system: Some("You are a site reliability engineer reviewing evidence.".into()),
        max_tokens: Some(max_tokens.min(MAX_NARRATIVE_TOKENS)),
        response_schema: None,
    });
    let reply = cx.spec.model.chat(&chat).await?;
    let (narrative, order) = split_order(&reply.text);
    Ok((
        Some(narrative).filter(|n| !n.is_empty()),
        order,
        reply.usage,
        reply.reported_model,
    ))
}

/// The narrative without its `ORDER:` line, and the order that line asks.
fn split_order(text: &str) -> (String, Vec<String>) {
    let mut order = Vec::new();
    let mut kept = Vec::new();
    for line in text.lines() {
        match line.trim().strip_prefix("ORDER:") {
            Some(rest) => order.extend(
                rest.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty()),
            ),
            None => kept.push(line),
        }
    }
    let narrative = kept.join("\n").trim().to_owned();
    let narrative = crate::text::clip(&narrative, oshal_ops::investigation::MAX_NARRATIVE_BYTES);
    (narrative.to_owned(), order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_line_is_taken_out_of_the_narrative() {
        let (n, o) = split_order("Node n1 died [E-1].\nORDER: node_down:n1, slow_model:b1\n");
        assert_eq!(n, "Node n1 died [E-1].");
        assert_eq!(o, ["node_down:n1", "slow_model:b1"]);
        let (n, o) = split_order("nothing to reorder");
        assert_eq!((n.as_str(), o.len()), ("nothing to reorder", 0));
    }

    #[test]
    fn a_call_refused_for_approval_is_kept_as_such() {
        let t = TenantId::default_tenant();
        let e = evidence(
            1,
            &t,
            "requeue_node",
            &json!({}),
            Err(&ToolError::ApprovalRequired("a write".into())),
            5,
        );
        assert_eq!(e.status, ToolStatus::ApprovalRequired);
        let ok = evidence(2, &t, "get_bots", &json!({}), Ok(json!({"bots": []})), 5);
        assert_eq!(ok.status, ToolStatus::NoData);
        assert_eq!(ok.replay, "GET /api/v1/bots");
        assert!(ok.intact());
    }
}
