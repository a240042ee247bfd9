//! A typed client for the HTTP API, as the CLI (and tests) use it.
//!
//! Errors come back as the server's [`ApiError`] whenever the server answered
//! with one, so a caller prints the same message a browser would show.

use serde::de::DeserializeOwned;
use std::time::Duration;

use super::{ApiError, ErrorBody, ErrorKind};
use crate::controller::{BotView, Submitted};
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

#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
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
            return serde_json::from_slice(&bytes).map_err(|e| ClientError::Transport {
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
}
