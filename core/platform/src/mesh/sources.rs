//! The mesh's sources on the wire: Headscale's REST API over HTTP (a
//! bearer API key), `tailscaled`'s LocalAPI over its unix socket
//! (HTTP/1.1, Host `local-tailscaled.sock`, no Origin or Referer, which it
//! refuses), and the container engine's API (Docker's, which Podman
//! serves too) over its unix socket. Each answer is read up to [`oshal_mesh::MAX_ANSWER`] bytes
//! and within [`TIMEOUT`]; what went wrong is a [`Failure`] that names the
//! source's own words.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use oshal_mesh::{MAX_ANSWER, Refusal};
use serde_json::Value;

use crate::connector::broker::Secret;

/// How long one request may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Why a source gave no answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    Unreachable(String),
    /// 401 or 403: the key is refused.
    Unauthorized(String),
    Failed {
        status: u16,
        message: String,
    },
    Malformed(Refusal),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(m) => write!(f, "unreachable: {m}"),
            Self::Unauthorized(m) => write!(f, "the API key was refused: {m}"),
            Self::Failed { status, message } => write!(f, "answered {status}: {message}"),
            Self::Malformed(r) => write!(f, "answered outside its documented shape at {r}"),
        }
    }
}

/// Headscale's REST API at one URL.
#[derive(Debug, Clone)]
pub struct Headscale {
    base: url::Url,
    http: reqwest::Client,
}

impl Headscale {
    /// `url` is the server's root (`https://hs.example.net`); refused
    /// unless it is http(s) without credentials, query or fragment.
    pub fn new(url: &str) -> Result<Self, Refusal> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Refusal::new("headscale_url", format!("no HTTP client for it ({e})")))?;
        let base = url::Url::parse(url)
            .map_err(|e| Refusal::new("headscale_url", format!("not a URL ({e})")))?;
        if !matches!(base.scheme(), "http" | "https")
            || base.host_str().is_none()
            || !base.username().is_empty()
            || base.password().is_some()
            || base.query().is_some()
            || base.fragment().is_some()
        {
            return Err(Refusal::new(
                "headscale_url",
                "must be an http(s) URL with a host and no credentials, query or fragment",
            ));
        }
        Ok(Self { base, http })
    }

    pub fn url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    fn at(&self, path: &str) -> url::Url {
        let mut u = self.base.clone();
        let root = u.path().trim_end_matches('/').to_owned();
        u.set_path(&format!("{root}{path}"));
        u
    }

    /// `GET /version` (no key; 0.27 on): `None` when the server has no
    /// such route.
    pub async fn version(&self) -> Option<String> {
        let resp = self.http.get(self.at("/version")).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let body = read_limited_reqwest(resp).await.ok()?;
        oshal_mesh::headscale::version(&oshal_mesh::json(&body).ok()?)
    }

    /// A request under `/api/v1` with the key; its JSON answer.
    pub async fn call(
        &self,
        key: &Secret,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let mut req = self
            .http
            .request(method, self.at(&format!("/api/v1{path}")))
            .bearer_auth(key.expose())
            .query(query);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| Failure::Unreachable(without_url(&e)))?;
        let status = resp.status().as_u16();
        let bytes = read_limited_reqwest(resp).await?;
        if status == 401 || status == 403 {
            return Err(Failure::Unauthorized(oshal_mesh::headscale::error_message(
                &bytes,
            )));
        }
        if !(200..300).contains(&status) {
            return Err(Failure::Failed {
                status,
                message: oshal_mesh::headscale::error_message(&bytes),
            });
        }
        oshal_mesh::json(&bytes).map_err(Failure::Malformed)
    }
}

/// reqwest's error without the URL (which is the operator's, but a
/// message names the source already).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    match last {
        Some(cause) => format!("{kind} ({cause})"),
        None => kind.to_owned(),
    }
}

async fn read_limited_reqwest(mut resp: reqwest::Response) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| Failure::Unreachable(without_url(&e)))?
    {
        if out.len() + chunk.len() > MAX_ANSWER {
            return Err(Failure::Malformed(
                Refusal::new("body", format!("is over {MAX_ANSWER} bytes")).limit(MAX_ANSWER),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// `GET path` on `tailscaled`'s LocalAPI at `socket`.
pub async fn local_api(socket: &Path, path: &str) -> Result<Value, Failure> {
    unix_get(socket, "local-tailscaled.sock", path).await
}

/// `GET path` over HTTP/1.1 on a unix socket, with `host` as the Host.
pub async fn unix_get(socket: &Path, host: &str, path: &str) -> Result<Value, Failure> {
    let work = async {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|e| Failure::Unreachable(format!("{}: {e}", socket.display())))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, host)
            .body(Empty::<Bytes>::new())
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| Failure::Unreachable(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| Failure::Malformed(Refusal::new("body", format!("not read whole ({e})"))))?
            .to_bytes();
        if status == 401 || status == 403 {
            return Err(Failure::Unauthorized(
                oshal_kernel::text::clip(&String::from_utf8_lossy(&body), 300).to_owned(),
            ));
        }
        if !(200..300).contains(&status) {
            return Err(Failure::Failed {
                status,
                message: oshal_kernel::text::clip(&String::from_utf8_lossy(&body), 300)
                    .trim()
                    .to_owned(),
            });
        }
        oshal_mesh::json(&body).map_err(Failure::Malformed)
    };
    tokio::time::timeout(TIMEOUT, work)
        .await
        .unwrap_or_else(|_| {
            Err(Failure::Unreachable(format!(
                "no answer within {TIMEOUT:?}"
            )))
        })
}

/// The round trip of a TCP handshake to `addr`: a connection accepted or
/// refused (a reset) both came back from the host; no answer within
/// `within` is `None`.
pub async fn round_trip(addr: std::net::SocketAddr, within: Duration) -> Option<f64> {
    let start = std::time::Instant::now();
    match tokio::time::timeout(within, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Some(start.elapsed().as_secs_f64() * 1000.0),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Some(start.elapsed().as_secs_f64() * 1000.0)
        }
        _ => None,
    }
}
