//! The platform checks: connectors (trust and grants), the API listeners
//! (probed live: a request without the token, and one with a wrong token,
//! must be refused), and the fail-closed probes (a call no grant allows must
//! be denied by the gate; a forged or misbound token must be refused by the
//! broker before any credential is read).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::{CheckRun, Listener, Location};
use crate::connector::Connectors;
use crate::connector::call::CallRef;
use crate::ticket::{BotId, TicketId};

/// The bot id the fail-closed probe acts as. A grant to it is itself a
/// finding (the probe would be allowed).
pub const PROBE_BOT: &str = "oshal-security-probe";

const NO_CONNECTORS: &str = "no connectors in this controller";

pub async fn connector_checks(connectors: Option<&Connectors>, bots: &[String]) -> Vec<CheckRun> {
    let ids = [
        "connectors.untrusted-enabled",
        "connectors.grant-exceeds-scopes",
        "connectors.grant-orphaned",
    ];
    let Some(c) = connectors else {
        return ids
            .iter()
            .map(|id| CheckRun::skipped(id, NO_CONNECTORS))
            .collect();
    };
    let mut untrusted = CheckRun::new(ids[0]);
    match c.untrusted_enabled().await {
        Ok((enabled, problems)) => {
            for (id, why) in &problems {
                untrusted.found(format!("connector {id}"), why.clone());
            }
            untrusted.evidence = format!(
                "{} of {enabled} enabled connectors signed or approved",
                enabled - problems.len()
            );
        }
        Err(e) => untrusted = CheckRun::error(ids[0], format!("reading the catalog: {e}")),
    }
    let grants = match c.grants(None).await {
        Ok(g) => g,
        Err(e) => {
            return vec![
                untrusted,
                CheckRun::error(ids[1], format!("reading grants: {e}")),
                CheckRun::error(ids[2], format!("reading grants: {e}")),
            ];
        }
    };
    let mut exceeds = CheckRun::new(ids[1]);
    let mut orphaned = CheckRun::new(ids[2]);
    let live: BTreeSet<&str> = bots.iter().map(String::as_str).collect();
    for g in &grants {
        let object = format!("grant {}", g.id);
        match c.registry().get(&g.connector) {
            None => exceeds.found(
                &object,
                format!(
                    "grant {} to {} names connector {}, which is not known",
                    g.id,
                    g.holder(),
                    g.connector
                ),
            ),
            Some(m) => {
                let ops: Vec<&str> = g
                    .operations
                    .iter()
                    .filter(|o| m.operation(o).is_none())
                    .map(String::as_str)
                    .collect();
                let declared: BTreeSet<&str> = m
                    .operations
                    .iter()
                    .flat_map(|o| o.scopes.iter().map(String::as_str))
                    .collect();
                let scopes: Vec<&str> = g
                    .scopes
                    .iter()
                    .map(String::as_str)
                    .filter(|s| !declared.contains(s))
                    .collect();
                if !ops.is_empty() || !scopes.is_empty() {
                    exceeds.found(
                        &object,
                        format!(
                            "grant {} to {} on {} names what the connector does not declare: operations [{}], scopes [{}]",
                            g.id,
                            g.holder(),
                            g.connector,
                            ops.join(", "),
                            scopes.join(", ")
                        ),
                    );
                }
            }
        }
        // A grant bound to a ticket alone is held by whichever bot runs it.
        if let Some(bot) = &g.bot
            && !live.contains(bot.as_str())
        {
            orphaned.found(
                &object,
                format!(
                    "grant {} on {} is held by {}, which is not a bot of this controller",
                    g.id, g.connector, bot
                ),
            );
        }
    }
    exceeds.evidence = format!(
        "{} of {} grants within their connector",
        grants.len() - exceeds.observations.len(),
        grants.len()
    );
    orphaned.evidence = format!(
        "{} of {} grants held by one of {} bots",
        grants.len() - orphaned.observations.len(),
        grants.len(),
        bots.len()
    );
    vec![untrusted, exceeds, orphaned]
}

/// The fail-closed probes, against the first enabled connector.
pub async fn probes(connectors: Option<&Connectors>) -> Vec<CheckRun> {
    let ids = ["probe.gate-denies", "probe.broker-refuses"];
    let Some(c) = connectors else {
        return ids
            .iter()
            .map(|id| CheckRun::skipped(id, NO_CONNECTORS))
            .collect();
    };
    let Some((connector, operation)) = c
        .list()
        .into_iter()
        .filter(|v| v.enabled)
        .find_map(|v| v.operations.first().map(|o| (v.id.clone(), o.id.clone())))
    else {
        return ids
            .iter()
            .map(|id| CheckRun::skipped(id, "no enabled connector to probe"))
            .collect();
    };
    let bot = BotId::parse(PROBE_BOT).expect("the probe's id is a valid bot id");
    let call = CallRef {
        bot: bot.clone(),
        tenant: None,
        ticket: TicketId::new(),
        attempt: 1,
        connector: connector.clone(),
        operation: operation.clone(),
    };
    let mut gate = CheckRun::new(ids[0]);
    // Empty parameters may not fit the operation; a grant shows either way.
    let decision = c.decide(&call, &serde_json::json!({})).await;
    if decision.granted() {
        gate.found(
            format!("connector {connector} operation {operation}"),
            format!(
                "the gate allowed {PROBE_BOT}, which should hold no grant, to call {connector}.{operation}: {}",
                decision.reason
            ),
        );
    }
    gate.evidence = format!(
        "probe {connector}.{operation} by {PROBE_BOT}: {}",
        if decision.granted() {
            "allowed"
        } else {
            "denied"
        }
    );

    let mut broker = CheckRun::new(ids[1]);
    let manifest = c.registry().get(&connector);
    match manifest {
        None => broker = CheckRun::error(ids[1], format!("connector {connector} vanished")),
        Some(m) => {
            let forged = crate::connector::broker::ToolToken::forged();
            let forged_refused = c.broker().exchange(&forged, &call, &m, &[]).await.is_err();
            // A real token, presented for another ticket's call.
            let token = c.broker().issue(&call, &[]);
            let other = CallRef {
                ticket: TicketId::new(),
                ..call.clone()
            };
            let misbound_refused = c.broker().exchange(&token, &other, &m, &[]).await.is_err();
            if !forged_refused {
                broker.found(
                    "broker forged token",
                    "the broker accepted a token it never issued",
                );
            }
            if !misbound_refused {
                broker.found(
                    "broker token binding",
                    "the broker accepted a token for a call it was not issued for",
                );
            }
            broker.evidence = format!(
                "forged token {}, misbound token {}",
                if forged_refused {
                    "refused"
                } else {
                    "accepted"
                },
                if misbound_refused {
                    "refused"
                } else {
                    "accepted"
                }
            );
        }
    }
    vec![gate, broker]
}

/// The address a probe reaches `addr` at: loopback for a wildcard bind.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// One operation of the API, for the surface probe: its method and a path
/// with every `{…}` filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurfaceRoute {
    pub method: String,
    pub path: String,
}

/// The probe when no route list is given: one gated read.
fn default_routes() -> Vec<SurfaceRoute> {
    vec![SurfaceRoute {
        method: "GET".into(),
        path: "/api/v1/bots".into(),
    }]
}

/// Probes every route in `routes` (every gated operation of the API's
/// contract, as `serve` passes them; one gated read if none is given) on
/// every listener, without a token and with a wrong one: each must answer
/// 401.
pub async fn surface_checks(listeners: &[Listener], routes: &[SurfaceRoute]) -> Vec<CheckRun> {
    let fallback;
    let routes = if routes.is_empty() {
        fallback = default_routes();
        &fallback[..]
    } else {
        routes
    };
    let ids = ["surfaces.no-token", "surfaces.plaintext-remote"];
    if listeners.is_empty() {
        return ids
            .iter()
            .map(|id| {
                CheckRun::skipped(
                    id,
                    "no API listener in this process (the desktop window calls its controller in-process)",
                )
            })
            .collect();
    }
    // The probe calls this process's own listeners to see them refuse; a
    // TLS listener's certificate (perhaps self-signed, perhaps just
    // renewed) is not what it checks, so it is not verified here.
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .tls_danger_accept_invalid_certs(listeners.iter().any(|l| l.tls))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            return ids
                .iter()
                .map(|id| CheckRun::error(id, format!("HTTP client: {e}")))
                .collect();
        }
    };
    let mut token = CheckRun::new(ids[0]);
    let mut plain = CheckRun::new(ids[1]);
    let mut refused = 0;
    for l in listeners {
        let scheme = if l.tls { "https" } else { "http" };
        let object = format!("listener {}", l.addr);
        let location = Some(Location {
            uri: format!("{scheme}://{}", l.addr),
            line: None,
        });
        'routes: for route in routes {
            let url = format!("{scheme}://{}{}", reachable(l.addr), route.path);
            let Ok(method) = reqwest::Method::from_bytes(route.method.as_bytes()) else {
                token = CheckRun::error(ids[0], format!("no such method {:?}", route.method));
                break 'routes;
            };
            for (what, header) in [
                ("no token", None),
                (
                    "a wrong token",
                    Some("Bearer oshal-security-probe-wrong-token"),
                ),
            ] {
                let mut req = client.request(method.clone(), &url);
                if let Some(h) = header {
                    req = req.header(reqwest::header::AUTHORIZATION, h);
                }
                match req.send().await {
                    Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED => refused += 1,
                    Ok(r) => token.found_with(
                        &object,
                        format!(
                            "{} {url} with {what} answered {} instead of 401",
                            route.method,
                            r.status().as_u16()
                        ),
                        super::Severity::Critical,
                        location.clone(),
                    ),
                    Err(e) => {
                        token = CheckRun::error(ids[0], format!("probing {url}: {e}"));
                        break 'routes;
                    }
                }
            }
        }
        if !l.addr.ip().is_loopback() && !l.tls {
            plain.found_with(
                &object,
                format!(
                    "the API listens on {} (not loopback) without TLS: the token crosses the network in the clear",
                    l.addr
                ),
                super::Severity::High,
                location,
            );
        }
    }
    if token.status != super::CheckStatus::Error {
        token.evidence = format!(
            "{} listeners, {refused}/{} unauthenticated probes refused with 401 ({} routes)",
            listeners.len(),
            listeners.len() * routes.len() * 2,
            routes.len()
        );
    }
    plain.evidence = format!(
        "{} of {} listeners on loopback or TLS",
        listeners.len() - plain.observations.len(),
        listeners.len()
    );
    vec![token, plain]
}
