//! A typed client for the HTTP API, as the CLI, the desktop app (attached to
//! a fleet) and tests use it. Every request is built from the route table
//! ([`super::routes`]): no path is written here.
//!
//! Errors come back as the server's [`ApiError`] whenever the server answered
//! with one, so a caller prints the same message a browser would show.

use serde::de::DeserializeOwned;
use std::time::Duration;

use super::routes::{self as r, Endpoint, Id, PathArgs};
use super::{
    ApiError, BatchReport, BatchSubmit, BotHold, BudgetBody, BulkReport, BulkRequest, ErrorBody,
    ErrorKind, FindingsQuery, GrantQuery, NodeHold, NodeRestarted, StateCount, TenantHold,
    TenantView, TicketFilter, TrailQuery,
};
use crate::connector::store::{AuditEntry, EffectRow, Grant};
use crate::connector::{ConnectorView, IntegrationView, NewGrant};
use crate::controller::{BotView, CoreEvent, Health, Submitted};
use crate::cost::CostSummary;
use crate::security::{ControlView, Finding, ScanReport, SuppressRequest};
use crate::store::{Tenant, TicketPage, TicketView};
use crate::ticket::NewTicket;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("{0}")]
    Api(ApiError),
    #[error("cannot reach the Oshal API at {url}: {message}")]
    Transport { url: String, message: String },
}

impl From<ClientError> for ApiError {
    /// The server's own error as it sent it; not reaching it at all is
    /// `unreachable`, with the URL and the cause.
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Api(e) => e,
            e @ ClientError::Transport { .. } => {
                ApiError::new(ErrorKind::Unreachable, e.to_string())
            }
        }
    }
}

/// An error and its causes, outermost first (`error sending request: …:
/// invalid peer certificate: UnknownIssuer`): reqwest's own message alone
/// never says why a TLS handshake failed.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[derive(Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
    /// How the controller's certificate is trusted, for the WebSocket as
    /// for HTTP (`None`: plain HTTP with the system's trust, where no
    /// certificate store is needed at all).
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// Never shows the token.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A client that trusts the system's roots (or speaks plain HTTP).
    pub fn new(base: &str, token: &str) -> Result<Self, ClientError> {
        Self::with_trust(base, token, &crate::tls::Trust::System)
    }

    /// A client that trusts the controller's certificate as `trust` says.
    pub fn with_trust(
        base: &str,
        token: &str,
        trust: &crate::tls::Trust,
    ) -> Result<Self, ClientError> {
        let refused = |message: String| ClientError::Transport {
            url: base.to_owned(),
            message,
        };
        let https = base.starts_with("https://");
        let tls = match trust {
            crate::tls::Trust::System if !https => None,
            crate::tls::Trust::System => {
                Some(crate::tls::system_config().map_err(|e| refused(e.to_string()))?)
            }
            other => Some(std::sync::Arc::new(
                other.client_config().map_err(|e| refused(e.to_string()))?,
            )),
        };
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60));
        if let Some(config) = &tls {
            builder = builder.tls_backend_preconfigured((**config).clone());
        }
        let http = builder.build().map_err(|e| refused(e.to_string()))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http,
            tls,
        })
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let transport = |e: reqwest::Error| ClientError::Transport {
            url: self.base.clone(),
            message: with_causes(&e),
        };
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(transport)?;
        if status.is_success() {
            // A success with no body (204) reads as `null`.
            let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            return serde_json::from_slice(bytes).map_err(|e| ClientError::Transport {
                url: self.base.clone(),
                message: format!("unexpected reply ({e})"),
            });
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Err(ClientError::Api(body.error)),
            Err(_) => Err(ClientError::Api(ApiError::new(
                ErrorKind::Internal,
                format!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&bytes)
                        .chars()
                        .take(200)
                        .collect::<String>()
                ),
            ))),
        }
    }

    /// Endpoint `E`'s URL: the base URL (a reverse proxy's path prefix is
    /// kept), then the row's path with each `{…}` filled by the next
    /// argument, escaped as one segment (a `/`, `?`, `#` or `%` in an id
    /// stays inside it).
    fn url<E: Endpoint>(&self, args: &E::Args) -> Result<reqwest::Url, ClientError> {
        let bad = |message: String| ClientError::Transport {
            url: self.base.clone(),
            message,
        };
        let mut url = reqwest::Url::parse(&self.base).map_err(|e| bad(e.to_string()))?;
        let mut values = args.segments().into_iter();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| bad("the URL cannot take a path".into()))?;
            path.pop_if_empty();
            for segment in E::ROUTE.path.trim_start_matches('/').split('/') {
                if segment.starts_with('{') {
                    path.push(values.next().unwrap_or_default());
                } else {
                    path.push(segment);
                }
            }
        }
        Ok(url)
    }

    /// Calls endpoint `E` with its path arguments, query and body (`None`
    /// for a route that takes none); an empty success (204) is `()`.
    pub async fn request<E: Endpoint>(
        &self,
        args: E::Args,
        query: Option<&E::Query>,
        body: Option<&E::Body>,
    ) -> Result<E::Response, ClientError> {
        let mut req = self
            .http
            .request(E::ROUTE.verb.method(), self.url::<E>(&args)?);
        if let Some(q) = query {
            req = req.query(q);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send(req).await
    }

    pub async fn submit(&self, ticket: &NewTicket) -> Result<Submitted, ClientError> {
        self.request::<r::SubmitTicket>((), None, Some(ticket))
            .await
    }

    /// A page of tickets, filtered as the server checks filters.
    pub async fn list(&self, filter: &TicketFilter) -> Result<TicketPage, ClientError> {
        self.request::<r::ListTickets>((), Some(filter), None).await
    }

    /// Tickets per state, every state listed.
    pub async fn counts(&self) -> Result<Vec<StateCount>, ClientError> {
        self.request::<r::CountTickets>((), None, None).await
    }

    /// Cancel or retry every ticket a filter matches (a dry run only counts).
    pub async fn bulk(&self, request: &BulkRequest) -> Result<BulkReport, ClientError> {
        self.request::<r::BulkTickets>((), None, Some(request))
            .await
    }

    /// Clear a walk-through's tickets: the unfinished cancelled, the ended
    /// removed where the store allows it.
    pub async fn clear(
        &self,
        query: &super::ClearQuery,
    ) -> Result<crate::store::Cleared, ClientError> {
        self.request::<r::ClearTickets>((), Some(query), None).await
    }

    pub async fn batch(&self, tickets: &BatchSubmit) -> Result<BatchReport, ClientError> {
        self.request::<r::BatchTickets>((), None, Some(tickets))
            .await
    }

    pub async fn ticket(&self, id: impl Into<Id>) -> Result<TicketView, ClientError> {
        self.request::<r::GetTicket>(id.into(), None, None).await
    }

    pub async fn cancel(&self, id: impl Into<Id>) -> Result<TicketView, ClientError> {
        self.request::<r::CancelTicket>(id.into(), None, None).await
    }

    pub async fn approve(&self, id: impl Into<Id>) -> Result<TicketView, ClientError> {
        self.request::<r::ApproveTicket>(id.into(), None, None)
            .await
    }

    pub async fn bots(&self) -> Result<Vec<BotView>, ClientError> {
        self.request::<r::ListBots>((), None, None).await
    }

    pub async fn drain_bot(&self, bot: impl Into<Id>) -> Result<BotHold, ClientError> {
        self.request::<r::DrainBot>(bot.into(), None, None).await
    }

    pub async fn uncordon_bot(&self, bot: impl Into<Id>) -> Result<BotHold, ClientError> {
        self.request::<r::UncordonBot>(bot.into(), None, None).await
    }

    pub async fn drain_node(&self, node: impl Into<Id>) -> Result<NodeHold, ClientError> {
        self.request::<r::DrainNode>(node.into(), None, None).await
    }

    pub async fn restart_node(&self, node: impl Into<Id>) -> Result<NodeRestarted, ClientError> {
        self.request::<r::RestartNode>(node.into(), None, None)
            .await
    }

    pub async fn uncordon_node(&self, node: impl Into<Id>) -> Result<NodeHold, ClientError> {
        self.request::<r::UncordonNode>(node.into(), None, None)
            .await
    }

    pub async fn cost_summary(&self) -> Result<CostSummary, ClientError> {
        self.request::<r::GetCostSummary>((), None, None).await
    }

    pub async fn tenants(&self) -> Result<Vec<TenantView>, ClientError> {
        self.request::<r::ListTenants>((), None, None).await
    }

    pub async fn set_budget(
        &self,
        tenant: impl Into<Id>,
        budget: &BudgetBody,
    ) -> Result<Tenant, ClientError> {
        self.request::<r::SetBudget>(tenant.into(), None, Some(budget))
            .await
    }

    /// Pauses (`paused`) or resumes a tenant.
    pub async fn pause_tenant(
        &self,
        tenant: impl Into<Id>,
        paused: bool,
    ) -> Result<TenantHold, ClientError> {
        if paused {
            self.request::<r::PauseTenant>(tenant.into(), None, None)
                .await
        } else {
            self.request::<r::ResumeTenant>(tenant.into(), None, None)
                .await
        }
    }

    pub async fn connectors(&self) -> Result<Vec<ConnectorView>, ClientError> {
        self.request::<r::ListConnectors>((), None, None).await
    }

    /// Stores a connector's credential (write-only).
    pub async fn put_credential(
        &self,
        connector: impl Into<Id>,
        credential: &serde_json::Value,
    ) -> Result<(), ClientError> {
        self.request::<r::PutCredential>(connector.into(), None, Some(credential))
            .await
    }

    pub async fn catalog(&self) -> Result<Vec<ConnectorView>, ClientError> {
        self.request::<r::ListCatalog>((), None, None).await
    }

    /// Imports an OpenAPI 3 document as a disabled catalog entry.
    pub async fn import_catalog(
        &self,
        document: &serde_json::Value,
    ) -> Result<ConnectorView, ClientError> {
        self.request::<r::ImportCatalog>((), None, Some(document))
            .await
    }

    pub async fn approve_catalog(&self, id: impl Into<Id>) -> Result<ConnectorView, ClientError> {
        self.request::<r::ApproveCatalog>(id.into(), None, None)
            .await
    }

    pub async fn grants(&self, query: &GrantQuery) -> Result<Vec<Grant>, ClientError> {
        self.request::<r::ListGrants>((), Some(query), None).await
    }

    pub async fn add_grant(&self, grant: &NewGrant) -> Result<Grant, ClientError> {
        self.request::<r::AddGrant>((), None, Some(grant)).await
    }

    pub async fn revoke_grant(&self, id: impl Into<Id>) -> Result<(), ClientError> {
        self.request::<r::RevokeGrant>(id.into(), None, None).await
    }

    pub async fn audit(&self, query: &TrailQuery) -> Result<Vec<AuditEntry>, ClientError> {
        self.request::<r::ListAudit>((), Some(query), None).await
    }

    pub async fn effects(&self, query: &TrailQuery) -> Result<Vec<EffectRow>, ClientError> {
        self.request::<r::ListEffects>((), Some(query), None).await
    }

    /// What this client's token is: the operator's, or a tenant's.
    pub async fn open_session(
        &self,
        spec: &crate::trading::NewSession,
    ) -> Result<crate::trading::SessionView, ClientError> {
        self.request::<r::OpenSession>((), None, Some(spec)).await
    }

    pub async fn sessions(&self) -> Result<Vec<crate::trading::SessionView>, ClientError> {
        self.request::<r::ListSessions>((), None, None).await
    }

    pub async fn session(
        &self,
        id: impl Into<Id>,
    ) -> Result<crate::trading::SessionView, ClientError> {
        self.request::<r::GetSession>(id.into(), None, None).await
    }

    pub async fn blotter(&self, id: impl Into<Id>) -> Result<crate::trading::Blotter, ClientError> {
        self.request::<r::GetBlotter>(id.into(), None, None).await
    }

    pub async fn recap(&self, id: impl Into<Id>) -> Result<crate::trading::RecapView, ClientError> {
        self.request::<r::GetRecap>(id.into(), None, None).await
    }

    pub async fn kill_session(
        &self,
        id: impl Into<Id>,
        request: &crate::trading::KillRequest,
    ) -> Result<crate::trading::KillView, ClientError> {
        self.request::<r::KillSession>(id.into(), None, Some(request))
            .await
    }

    pub async fn session_orders(
        &self,
        id: impl Into<Id>,
        query: &crate::trading::OrdersQuery,
    ) -> Result<Vec<crate::trading::OrderView>, ClientError> {
        self.request::<r::ListOrders>(id.into(), Some(query), None)
            .await
    }

    pub async fn close_session(
        &self,
        id: impl Into<Id>,
        request: &crate::trading::CloseRequest,
    ) -> Result<crate::trading::SessionView, ClientError> {
        self.request::<r::CloseSession>(id.into(), None, Some(request))
            .await
    }

    pub async fn set_session_state(
        &self,
        id: impl Into<Id>,
        request: &crate::trading::StateRequest,
    ) -> Result<crate::trading::StateChangeView, ClientError> {
        self.request::<r::SetSessionState>(id.into(), None, Some(request))
            .await
    }

    pub async fn whoami(&self) -> Result<crate::api::tokens::WhoAmI, ClientError> {
        self.request::<r::WhoAmI>((), None, None).await
    }

    pub async fn create_token(
        &self,
        new: &crate::api::tokens::NewToken,
    ) -> Result<crate::api::tokens::IssuedToken, ClientError> {
        self.request::<r::CreateToken>((), None, Some(new)).await
    }

    pub async fn tokens(&self) -> Result<Vec<crate::api::tokens::TokenView>, ClientError> {
        self.request::<r::ListTokens>((), None, None).await
    }

    pub async fn revoke_token(&self, id: impl Into<Id>) -> Result<(), ClientError> {
        self.request::<r::RevokeToken>(id.into(), None, None).await
    }

    pub async fn integrations(&self) -> Result<IntegrationView, ClientError> {
        self.request::<r::GetIntegrations>((), None, None).await
    }

    pub async fn security_scan(&self) -> Result<ScanReport, ClientError> {
        self.request::<r::RunScan>((), None, None).await
    }

    pub async fn security_findings(
        &self,
        query: &FindingsQuery,
    ) -> Result<Vec<Finding>, ClientError> {
        self.request::<r::ListFindings>((), Some(query), None).await
    }

    pub async fn security_suppress(
        &self,
        id: impl Into<Id>,
        request: &SuppressRequest,
    ) -> Result<Finding, ClientError> {
        self.request::<r::SuppressFinding>(id.into(), None, Some(request))
            .await
    }

    pub async fn security_controls(&self) -> Result<Vec<ControlView>, ClientError> {
        self.request::<r::ListControls>((), None, None).await
    }

    pub async fn export_sarif(&self) -> Result<serde_json::Value, ClientError> {
        self.request::<r::ExportSarif>((), None, None).await
    }

    pub async fn import_sarif(
        &self,
        log: &serde_json::Value,
    ) -> Result<Vec<ScanReport>, ClientError> {
        self.request::<r::ImportSarif>((), None, Some(log)).await
    }

    /// The controller's health; answered (200 or 503) without a token, so
    /// this also checks the token by asking for the counts.
    pub async fn health(&self) -> Result<Health, ClientError> {
        let transport = |e: reqwest::Error| ClientError::Transport {
            url: self.base.clone(),
            message: with_causes(&e),
        };
        let resp = self
            .http
            .get(self.url::<r::GetHealth>(&())?)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(transport)?;
        let bytes = resp.bytes().await.map_err(transport)?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Transport {
            url: self.base.clone(),
            message: format!("not an Oshal controller ({e})"),
        })
    }

    /// The controller's events over its WebSocket, the token sent as a
    /// bearer header (never in the URL). The stream ends when the server
    /// goes away; an unreadable message is skipped.
    pub async fn events(
        &self,
    ) -> Result<impl futures::Stream<Item = CoreEvent> + Send + use<>, ClientError> {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let transport = |message: String| ClientError::Transport {
            url: self.base.clone(),
            message,
        };
        let http_url = self.url::<r::Events>(&())?.to_string();
        let ws_url = match http_url.split_once("://") {
            Some(("https", rest)) => format!("wss://{rest}"),
            Some((_, rest)) => format!("ws://{rest}"),
            None => return Err(transport("the URL has no scheme".into())),
        };
        let mut request = ws_url
            .into_client_request()
            .map_err(|e| transport(e.to_string()))?;
        let bearer = format!("Bearer {}", self.token)
            .parse()
            .map_err(|_| transport("the token is not a valid header value".into()))?;
        request.headers_mut().insert("authorization", bearer);
        let connector = self.tls.clone().map(tokio_tungstenite::Connector::Rustls);
        let (socket, _) =
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector)
                .await
                .map_err(|e| transport(e.to_string()))?;
        Ok(socket.filter_map(|m| async move {
            match m {
                Ok(Message::Text(text)) => serde_json::from_str::<CoreEvent>(&text).ok(),
                _ => None,
            }
        }))
    }
}
