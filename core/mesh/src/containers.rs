//! The containers of a deployment as the container engine reports them,
//! over the Docker Engine API that Docker and Podman both serve on a unix
//! socket (unversioned paths, which every API version answers):
//! `GET /containers/json?all=true` lists them (id, names, image,
//! state, labels, among them compose's project and service and podman's
//! pod), and `GET /containers/{id}/json` tells what the list does not:
//! restarts (`RestartCount`) and health (`State.Health.Status`).

use std::collections::BTreeMap;

use oshal_kernel::clock::UnixMs;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use specta::Type;

use crate::{MAX_NODES, Refusal, typed};

/// A container's state, in the engine's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    /// A word this reader does not know, kept apart rather than guessed.
    Other,
}

/// What its health check last said (`None` on a container: it has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContainerHealth {
    Starting,
    Healthy,
    Unhealthy,
}

/// One container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Container {
    /// The first 12 hex digits of its id, as `docker ps` shows it.
    pub id: String,
    pub name: String,
    pub image: String,
    pub state: ContainerState,
    /// The engine's own line (`Up 2 minutes`, `Exited (1) 3 seconds ago`).
    pub status: String,
    pub health: Option<ContainerHealth>,
    /// `None` until its inspection is read.
    pub restarts: Option<u32>,
    /// Compose's project and service (`com.docker.compose.*`), or a pod's
    /// name (`io.podman…` / `io.kubernetes.pod.name`).
    pub project: Option<String>,
    pub service: Option<String>,
    pub pod: Option<String>,
    #[specta(type = Option<specta_typescript::Number>)]
    pub created_ms: Option<UnixMs>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawContainer {
    id: String,
    #[serde(default)]
    names: Option<Vec<String>>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    created: Option<i64>,
}

fn state(word: &str) -> ContainerState {
    match word.to_ascii_lowercase().as_str() {
        "created" | "configured" | "initialized" => ContainerState::Created,
        "running" => ContainerState::Running,
        "paused" => ContainerState::Paused,
        "restarting" => ContainerState::Restarting,
        "removing" => ContainerState::Removing,
        "exited" | "stopped" => ContainerState::Exited,
        "dead" => ContainerState::Dead,
        _ => ContainerState::Other,
    }
}

fn health(word: &str) -> Option<ContainerHealth> {
    match word.to_ascii_lowercase().as_str() {
        "starting" | "health: starting" => Some(ContainerHealth::Starting),
        "healthy" => Some(ContainerHealth::Healthy),
        "unhealthy" => Some(ContainerHealth::Unhealthy),
        _ => None,
    }
}

/// `GET /containers/json`'s answer; a malformed container is refused
/// alone, the others kept.
pub fn list(body: Value) -> Result<(Vec<Container>, Vec<Refusal>), Refusal> {
    let Value::Array(items) = body else {
        return Err(Refusal::new("body", "must be a JSON array of containers"));
    };
    if items.len() > MAX_NODES {
        return Err(Refusal::new(
            "body",
            format!("holds {} containers; the limit is {MAX_NODES}", items.len()),
        )
        .limit(MAX_NODES));
    }
    let (mut ok, mut refused) = (Vec::new(), Vec::new());
    for (i, v) in items.into_iter().enumerate() {
        match container(&format!("[{i}]"), v) {
            Ok(c) => ok.push(c),
            Err(r) => refused.push(r),
        }
    }
    Ok((ok, refused))
}

fn container(path: &str, v: Value) -> Result<Container, Refusal> {
    let c: RawContainer = typed(path, v)?;
    if c.id.len() < 12 || !c.id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Refusal::new(
            format!("{path}.Id"),
            format!("{:?} is not a container id (hex, at least 12 digits)", c.id),
        ));
    }
    let labels = c.labels.unwrap_or_default();
    let label = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| labels.get(*k))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    let status = c.status.unwrap_or_default();
    // `Up 2 minutes (healthy)`: Docker puts the health in the list.
    let in_status = status
        .rsplit_once('(')
        .and_then(|(_, h)| health(h.trim_end_matches(')')));
    Ok(Container {
        id: c.id[..12].to_owned(),
        name: c
            .names
            .unwrap_or_default()
            .first()
            .map(|n| n.trim_start_matches('/').to_owned())
            .unwrap_or_default(),
        image: c.image.unwrap_or_default(),
        state: state(c.state.as_deref().unwrap_or("")),
        status,
        health: in_status,
        restarts: None,
        project: label(&["com.docker.compose.project", "io.podman.compose.project"]),
        service: label(&["com.docker.compose.service", "io.podman.compose.service"]),
        pod: label(&["io.kubernetes.pod.name"]),
        created_ms: c
            .created
            .filter(|s| *s > 0)
            .and_then(|s| s.checked_mul(1000)),
    })
}

/// `GET /containers/{id}/json`'s answer laid over the listed container:
/// its restarts and its health.
pub fn inspected(c: &mut Container, body: &Value) -> Result<(), Refusal> {
    let restarts = body
        .get("RestartCount")
        .ok_or_else(|| Refusal::new("RestartCount", "is missing"))?;
    let n = restarts
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| Refusal::new("RestartCount", format!("{restarts} is not a count")))?;
    c.restarts = Some(n);
    if let Some(h) = body
        .pointer("/State/Health/Status")
        .and_then(Value::as_str)
        .and_then(health)
    {
        c.health = Some(h);
    }
    if let Some(pod) = body
        .get("Pod")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
    {
        c.pod.get_or_insert_with(|| pod.to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_list_is_read_with_compose_labels_and_dockers_health() {
        let (list, refused) = list(json!([
            {"Id": "bf4ba9889e1e9d4daa58", "Names": ["/oshal-node-1"], "Image": "localhost/oshal:0.1.0",
             "State": "running", "Status": "Up 2 minutes (healthy)", "Created": 1796428317,
             "Labels": {"com.docker.compose.project": "oshal", "com.docker.compose.service": "node"}},
            {"Id": "da16320fff01c9997c46", "Names": ["/pg"], "State": "exited", "Status": "Exited (1) 3 seconds ago"},
            {"Id": "not-hex", "Names": ["/bad"]},
            {"Names": ["/no-id"]},
        ]))
        .expect("read");
        assert_eq!(list.len(), 2);
        let node = &list[0];
        assert_eq!(
            (node.id.as_str(), node.name.as_str()),
            ("bf4ba9889e1e", "oshal-node-1")
        );
        assert_eq!(node.state, ContainerState::Running);
        assert_eq!(node.health, Some(ContainerHealth::Healthy));
        assert_eq!(node.service.as_deref(), Some("node"));
        assert_eq!(node.created_ms, Some(1_796_428_317_000));
        assert_eq!(list[1].state, ContainerState::Exited);
        assert_eq!(list[1].health, None);
        let paths: Vec<_> = refused.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["[2].Id", "[3].Id"]);
        assert_eq!(super::list(json!({})).expect_err("refused").path, "body");
    }

    #[test]
    fn an_inspection_gives_restarts_and_health() {
        let (mut list, _) =
            list(json!([{"Id": "da16320fff01c9997c46", "Names": ["/flappy"], "State": "running"}]))
                .expect("read");
        inspected(
            &mut list[0],
            &json!({"RestartCount": 9, "State": {"Health": {"Status": "unhealthy"}}, "Pod": "fleet"}),
        )
        .expect("read");
        assert_eq!(list[0].restarts, Some(9));
        assert_eq!(list[0].health, Some(ContainerHealth::Unhealthy));
        assert_eq!(list[0].pod.as_deref(), Some("fleet"));
        assert_eq!(
            inspected(&mut list[0], &json!({"RestartCount": -1}))
                .expect_err("refused")
                .path,
            "RestartCount"
        );
    }
}
