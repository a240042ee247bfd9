//! A typed client for the HTTP API, as the CLI (and tests) use it.
//!
//! Errors come back as the server's [`ApiError`] whenever the server answered
//! with one, so a caller prints the same message a browser would show.

use serde::de::DeserializeOwned;
use std::time::Duration;

use super::{ApiError, ErrorBody, ErrorKind, StateCount, TicketFilter};
use crate::controller::{BotView, CoreEvent, Health, Submitted};
use crate::cost::CostSummary;
use crate::store::{TicketPage, TicketView};
use crate::ticket::{NewTicket, TicketId, TicketState};

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

#[derive(Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
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

    pub fn new(base: &str, token: &str) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| ClientError::Transport {
                url: base.to_owned(),
                message: e.to_string(),
            })?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http,
        })
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let transport = |e: reqwest::Error| ClientError::Transport {
            url: self.base.clone(),
            message: e.to_string(),
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

    /// Any route: `method path` with an optional JSON body; an empty success
    /// (204) is `null`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, ClientError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .query(query);
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send(req).await
    }

    pub async fn integrations(&self) -> Result<crate::connector::IntegrationView, ClientError> {
        self.send(self.http.get(format!("{}/api/v1/integrations", self.base)))
            .await
    }

    pub async fn bulk(
        &self,
        request: &super::BulkRequest,
    ) -> Result<super::BulkReport, ClientError> {
        self.send(
            self.http
                .post(format!("{}/api/v1/tickets/bulk", self.base))
                .json(request),
        )
        .await
    }

    pub async fn security_controls(
        &self,
    ) -> Result<Vec<crate::security::ControlView>, ClientError> {
        self.send(
            self.http
                .get(format!("{}/api/v1/security/controls", self.base)),
        )
        .await
    }

    pub async fn security_findings(
        &self,
        state: Option<crate::security::FindingState>,
    ) -> Result<Vec<crate::security::Finding>, ClientError> {
        let q: Vec<(&str, &str)> = state.map(|s| ("state", s.as_str())).into_iter().collect();
        self.send(
            self.http
                .get(format!("{}/api/v1/security/findings", self.base))
                .query(&q),
        )
        .await
    }

    pub async fn security_scan(&self) -> Result<crate::security::ScanReport, ClientError> {
        self.send(
            self.http
                .post(format!("{}/api/v1/security/scans", self.base)),
        )
        .await
    }

    pub async fn security_suppress(
        &self,
        id: &str,
        request: &crate::security::SuppressRequest,
    ) -> Result<crate::security::Finding, ClientError> {
        self.send(
            self.http
                .post(format!(
                    "{}/api/v1/security/findings/{id}/suppress",
                    self.base
                ))
                .json(request),
        )
        .await
    }

    pub async fn submit(&self, ticket: &NewTicket) -> Result<Submitted, ClientError> {
        self.send(
            self.http
                .post(format!("{}/api/v1/tickets", self.base))
                .json(ticket),
        )
        .await
    }

    pub async fn ticket(&self, id: &str) -> Result<TicketView, ClientError> {
        self.send(self.http.get(format!("{}/api/v1/tickets/{id}", self.base)))
            .await
    }

    pub async fn tickets(
        &self,
        state: Option<TicketState>,
        limit: u32,
        cursor: Option<TicketId>,
    ) -> Result<TicketPage, ClientError> {
        let mut query: Vec<(&str, String)> = vec![("limit", limit.to_string())];
        if let Some(s) = state {
            query.push(("state", s.as_str().to_owned()));
        }
        if let Some(c) = cursor {
            query.push(("cursor", c.to_string()));
        }
        self.send(
            self.http
                .get(format!("{}/api/v1/tickets", self.base))
                .query(&query),
        )
        .await
    }

    pub async fn cancel(&self, id: &str) -> Result<TicketView, ClientError> {
        self.send(
            self.http
                .post(format!("{}/api/v1/tickets/{id}/cancel", self.base)),
        )
        .await
    }

    pub async fn bots(&self) -> Result<Vec<BotView>, ClientError> {
        self.send(self.http.get(format!("{}/api/v1/bots", self.base)))
            .await
    }

    pub async fn cost_summary(&self) -> Result<CostSummary, ClientError> {
        self.send(self.http.get(format!("{}/api/v1/cost/summary", self.base)))
            .await
    }

    /// The controller's health; answered (200 or 503) without a token, so
    /// this also checks the token by asking for the counts.
    pub async fn health(&self) -> Result<Health, ClientError> {
        let transport = |e: reqwest::Error| ClientError::Transport {
            url: self.base.clone(),
            message: e.to_string(),
        };
        let resp = self
            .http
            .get(format!("{}/api/v1/health", self.base))
            .send()
            .await
            .map_err(transport)?;
        let bytes = resp.bytes().await.map_err(transport)?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Transport {
            url: self.base.clone(),
            message: format!("not an Oshal controller ({e})"),
        })
    }

    /// Tickets per state, every state listed.
    pub async fn counts(&self) -> Result<Vec<StateCount>, ClientError> {
        self.send(
            self.http
                .get(format!("{}/api/v1/tickets/counts", self.base)),
        )
        .await
    }

    /// A page of tickets, filtered as the server checks filters.
    pub async fn list(&self, filter: &TicketFilter) -> Result<TicketPage, ClientError> {
        self.send(
            self.http
                .get(format!("{}/api/v1/tickets", self.base))
                .query(filter),
        )
        .await
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
        let ws_url = match self.base.split_once("://") {
            Some(("https", rest)) => format!("wss://{rest}/api/v1/events"),
            Some((_, rest)) => format!("ws://{rest}/api/v1/events"),
            None => return Err(transport("the URL has no scheme".into())),
        };
        let mut request = ws_url
            .into_client_request()
            .map_err(|e| transport(e.to_string()))?;
        let bearer = format!("Bearer {}", self.token)
            .parse()
            .map_err(|_| transport("the token is not a valid header value".into()))?;
        request.headers_mut().insert("authorization", bearer);
        let (socket, _) = tokio_tungstenite::connect_async(request)
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
