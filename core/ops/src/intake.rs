//! Alerts from outside, read from the senders' own payloads: Prometheus
//! Alertmanager's webhook (version 4) and PagerDuty's Events API v2.
//!
//! A payload that is not one of them is refused whole, naming the field.
//! Inside an Alertmanager payload each alert stands alone: one that is
//! malformed is refused at its path (`alerts[2].labels.alertname`) and the
//! others are taken, so one bad record never stops the rest. Text is
//! cleaned of NUL where it enters (the store cannot hold one). Pure logic.

use serde::Deserialize;
use serde_json::Value;
use sha2::Digest;

use oshal_kernel::clock::UnixMs;
use oshal_kernel::name::Named;
use oshal_kernel::text::clean_string;

use crate::alert::{
    Labels, MAX_ANNOTATION, MAX_LABEL_VALUE, MAX_LABELS, MAX_SUMMARY, Report, Severity, Signal,
    Source, check_label_name,
};

/// Alerts one payload may carry.
pub const MAX_ALERTS: usize = 1000;
/// Bytes of a PagerDuty `dedup_key` (PagerDuty's own limit).
pub const MAX_DEDUP_KEY: usize = 255;
/// Bytes of a link.
pub const MAX_LINK: usize = 2048;
/// Bytes of one alert's labels, annotations, summary and link together,
/// so its record stays well within what one journal entry holds.
pub const MAX_ALERT_BYTES: usize = 32 * 1024;

/// One alert's text, summed.
fn size(s: &Signal) -> usize {
    let pairs = |l: &Labels| l.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    pairs(&s.labels)
        + pairs(&s.annotations)
        + s.summary.len()
        + s.link.as_ref().map_or(0, String::len)
}

fn bounded(path: &str, s: Signal) -> Result<Signal, Refusal> {
    let n = size(&s);
    if n > MAX_ALERT_BYTES {
        return Err(Refusal::new(
            path,
            format!(
                "holds {n} bytes of labels, annotations and text; the limit is {MAX_ALERT_BYTES}"
            ),
        )
        .limit(MAX_ALERT_BYTES));
    }
    Ok(s)
}

/// Why a payload, or one alert of it, was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct Refusal {
    /// The JSON path of the field (`alerts[2].labels`; `body` for the
    /// whole).
    pub path: String,
    pub reason: String,
    /// The limit it broke, when it broke one.
    pub limit: Option<u64>,
}

impl Refusal {
    fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
            limit: None,
        }
    }

    fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n as u64);
        self
    }
}

/// What one payload gave: the signals taken and the alerts refused.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Intake {
    pub signals: Vec<Signal>,
    pub refused: Vec<Refusal>,
    /// What a PagerDuty sender is answered: the key the event went under.
    pub dedup_key: Option<String>,
}

/// An RFC 3339 time as unix ms; Alertmanager's zero time
/// (`0001-01-01T00:00:00Z`, "not ended") is `None`.
pub fn parse_time(path: &str, s: &str) -> Result<Option<UnixMs>, Refusal> {
    let t: jiff::Timestamp = s
        .parse()
        .map_err(|e| Refusal::new(path, format!("not an RFC 3339 time ({e})")))?;
    Ok((t.as_second() > 0).then(|| t.as_millisecond()))
}

fn text(path: &str, mut s: String, max: usize) -> Result<String, Refusal> {
    if s.len() > max {
        return Err(
            Refusal::new(path, format!("is {} bytes; the limit is {max}", s.len())).limit(max),
        );
    }
    clean_string(&mut s);
    Ok(s)
}

fn labels(path: &str, raw: Labels, value_max: usize) -> Result<Labels, Refusal> {
    if raw.len() > MAX_LABELS {
        return Err(Refusal::new(
            path,
            format!("holds {} entries; the limit is {MAX_LABELS}", raw.len()),
        )
        .limit(MAX_LABELS));
    }
    let mut out = Labels::new();
    for (k, v) in raw {
        check_label_name(&k).map_err(|why| Refusal::new(format!("{path}.{k}"), why))?;
        let v = text(&format!("{path}.{k}"), v, value_max)?;
        out.insert(k, v);
    }
    Ok(out)
}

fn typed<T: serde::de::DeserializeOwned>(path: &str, v: Value) -> Result<T, Refusal> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let inner = oshal_kernel::text::field_path(&e.path().to_string(), &e.inner().to_string());
        let at = if inner == "body" {
            path.to_owned()
        } else if path == "body" {
            inner
        } else {
            format!("{path}.{inner}")
        };
        Refusal::new(at, e.inner().to_string())
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AmEnvelope {
    version: String,
    alerts: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AmAlert {
    status: String,
    labels: Labels,
    #[serde(default)]
    annotations: Labels,
    starts_at: Option<String>,
    ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    generator_url: Option<String>,
}

/// An Alertmanager webhook payload (`version` "4"). `now` stands in for a
/// time the alert does not carry.
pub fn alertmanager(body: Value, now: UnixMs) -> Result<Intake, Refusal> {
    if !body.is_object() {
        return Err(Refusal::new("body", "must be a JSON object"));
    }
    let env: AmEnvelope = typed("body", body)?;
    if env.version != "4" {
        return Err(Refusal::new(
            "version",
            format!(
                "Alertmanager webhook version {:?} is not read; version \"4\" is",
                env.version
            ),
        ));
    }
    if env.alerts.len() > MAX_ALERTS {
        return Err(Refusal::new(
            "alerts",
            format!(
                "holds {} alerts; the limit is {MAX_ALERTS}",
                env.alerts.len()
            ),
        )
        .limit(MAX_ALERTS));
    }
    let mut out = Intake::default();
    for (i, raw) in env.alerts.into_iter().enumerate() {
        let path = format!("alerts[{i}]");
        match am_alert(&path, raw, now).and_then(|s| bounded(&path, s)) {
            Ok(s) => out.signals.push(s),
            Err(r) => out.refused.push(r),
        }
    }
    Ok(out)
}

fn am_alert(path: &str, raw: Value, now: UnixMs) -> Result<Signal, Refusal> {
    let a: AmAlert = typed(path, raw)?;
    let report = match a.status.as_str() {
        "firing" => Report::Firing,
        "resolved" => Report::Resolved,
        other => {
            return Err(Refusal::new(
                format!("{path}.status"),
                format!("{other:?} is neither \"firing\" nor \"resolved\""),
            ));
        }
    };
    let labels = labels(&format!("{path}.labels"), a.labels, MAX_LABEL_VALUE)?;
    let annotations = labels_any(&format!("{path}.annotations"), a.annotations)?;
    let name = labels
        .get("alertname")
        .filter(|n| !n.is_empty())
        .cloned()
        .ok_or_else(|| {
            Refusal::new(
                format!("{path}.labels.alertname"),
                "is required (the alert's name)",
            )
        })?;
    let starts = match a.starts_at {
        Some(s) => parse_time(&format!("{path}.startsAt"), &s)?,
        None => None,
    };
    let ends = match a.ends_at {
        Some(s) => parse_time(&format!("{path}.endsAt"), &s)?,
        None => None,
    };
    let at_ms = match report {
        Report::Resolved => ends.or(starts),
        _ => starts,
    }
    .unwrap_or(now);
    let link = a
        .generator_url
        .filter(|u| !u.is_empty())
        .map(|u| text(&format!("{path}.generatorURL"), u, MAX_LINK))
        .transpose()?;
    let summary = annotations
        .get("summary")
        .or_else(|| annotations.get("description"))
        .map(|s| oshal_kernel::text::clip(s, MAX_SUMMARY).to_owned())
        .unwrap_or_default();
    Ok(Signal {
        source: Source::Alertmanager,
        severity: Severity::from_label(labels.get("severity").map(String::as_str)),
        name,
        report,
        labels,
        annotations,
        summary,
        at_ms,
        dedup_key: None,
        link,
    })
}

/// Annotations: any names (Alertmanager does not restrict them), longer
/// values.
fn labels_any(path: &str, raw: Labels) -> Result<Labels, Refusal> {
    if raw.len() > MAX_LABELS {
        return Err(Refusal::new(
            path,
            format!("holds {} entries; the limit is {MAX_LABELS}", raw.len()),
        )
        .limit(MAX_LABELS));
    }
    let mut out = Labels::new();
    for (k, v) in raw {
        let k = text(
            &format!("{path}.{}", oshal_kernel::text::clip(&k, 64)),
            k.clone(),
            super::alert::MAX_LABEL_NAME,
        )?;
        let v = text(&format!("{path}.{k}"), v, MAX_ANNOTATION)?;
        out.insert(k, v);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PdEvent {
    routing_key: String,
    event_action: String,
    dedup_key: Option<String>,
    payload: Option<PdPayload>,
    #[serde(default)]
    #[allow(dead_code)]
    images: Vec<Value>,
    #[serde(default)]
    links: Vec<PdLink>,
    #[allow(dead_code)]
    client: Option<String>,
    #[allow(dead_code)]
    client_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PdPayload {
    summary: String,
    source: String,
    severity: String,
    timestamp: Option<String>,
    component: Option<String>,
    group: Option<String>,
    class: Option<String>,
    custom_details: Option<Value>,
}

#[derive(Deserialize)]
struct PdLink {
    href: String,
}

/// A PagerDuty Events API v2 event (`trigger`, `acknowledge`, `resolve`).
/// The routing key is checked to be there and is not kept.
pub fn pagerduty(body: Value, now: UnixMs) -> Result<Intake, Refusal> {
    if !body.is_object() {
        return Err(Refusal::new("body", "must be a JSON object"));
    }
    let ev: PdEvent = typed("body", body)?;
    if ev.routing_key.is_empty() || ev.routing_key.len() > 64 {
        return Err(Refusal::new("routing_key", "must be 1 to 64 bytes").limit(64));
    }
    let dedup_key = ev
        .dedup_key
        .map(|k| text("dedup_key", k, MAX_DEDUP_KEY))
        .transpose()?
        .filter(|k| !k.is_empty());
    let report = match ev.event_action.as_str() {
        "trigger" => Report::Firing,
        "acknowledge" => Report::Acknowledged,
        "resolve" => Report::Resolved,
        other => {
            return Err(Refusal::new(
                "event_action",
                format!("{other:?} is not one of trigger, acknowledge, resolve"),
            ));
        }
    };
    let link = ev
        .links
        .into_iter()
        .next()
        .map(|l| text("links[0].href", l.href, MAX_LINK))
        .transpose()?;
    let Some(p) = ev.payload else {
        // An acknowledge or resolve names its alert by key alone.
        let Some(key) = dedup_key else {
            return Err(Refusal::new(
                "dedup_key",
                "is required to acknowledge or resolve, and a trigger needs a payload",
            ));
        };
        if report == Report::Firing {
            return Err(Refusal::new("payload", "is required to trigger"));
        }
        return Ok(Intake {
            signals: vec![Signal {
                source: Source::Pagerduty,
                name: String::new(),
                report,
                severity: Severity::Info,
                labels: Labels::new(),
                annotations: Labels::new(),
                summary: String::new(),
                at_ms: now,
                dedup_key: Some(key.clone()),
                link,
            }],
            refused: Vec::new(),
            dedup_key: Some(key),
        });
    };
    let summary = text("payload.summary", p.summary, MAX_SUMMARY)?;
    if summary.is_empty() {
        return Err(Refusal::new("payload.summary", "must not be empty"));
    }
    let severity = Severity::parse(&p.severity).ok_or_else(|| {
        let words: Vec<&str> = Severity::all().iter().map(|s| s.as_str()).collect();
        Refusal::new(
            "payload.severity",
            format!("{:?} is not one of {}", p.severity, words.join(", ")),
        )
    })?;
    let at_ms = match p.timestamp {
        Some(t) => parse_time("payload.timestamp", &t)?.unwrap_or(now),
        None => now,
    };
    let mut labels = Labels::new();
    let mut put = |k: &str, v: Option<String>| -> Result<(), Refusal> {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            labels.insert(k.into(), text(&format!("payload.{k}"), v, MAX_LABEL_VALUE)?);
        }
        Ok(())
    };
    put("source", Some(p.source))?;
    put("component", p.component)?;
    put("group", p.group)?;
    put("class", p.class.clone())?;
    put("severity", Some(severity.as_str().into()))?;
    let name = p
        .class
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| oshal_kernel::text::clip(&summary, MAX_LABEL_VALUE).to_owned());
    labels.insert("alertname".into(), name.clone());
    let mut annotations = Labels::new();
    if let Some(details) = p.custom_details {
        let s = details.to_string();
        annotations.insert(
            "custom_details".into(),
            text("payload.custom_details", s, MAX_ANNOTATION)?,
        );
    }
    // A trigger without a key goes under one made of its payload, which
    // is answered, so the sender can acknowledge and resolve by it (and
    // the same trigger sent again is the same alert).
    let dedup_key = dedup_key.or_else(|| {
        let canonical = serde_json::to_vec(&(&name, &summary, &labels, &annotations))
            .expect("strings serialize");
        Some(oshal_kernel::text::hex(
            &sha2::Sha256::digest(&canonical)[..16],
        ))
    });
    let signal = Signal {
        source: Source::Pagerduty,
        name,
        report,
        severity,
        labels,
        annotations,
        summary,
        at_ms,
        dedup_key: dedup_key.clone(),
        link,
    };
    Ok(Intake {
        signals: vec![signal],
        refused: Vec::new(),
        dedup_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn am(alerts: Value) -> Value {
        json!({
            "version": "4", "groupKey": "{}:{alertname=\"LaneLag\"}", "truncatedAlerts": 0,
            "status": "firing", "receiver": "oshal", "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://am", "alerts": alerts
        })
    }

    fn firing(name: &str) -> Value {
        json!({
            "status": "firing",
            "labels": {"alertname": name, "severity": "critical", "bot": "b1"},
            "annotations": {"summary": "lane b1 lags"},
            "startsAt": "2026-12-04T10:00:00.250Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prom/graph", "fingerprint": "abc"
        })
    }

    #[test]
    fn alertmanager_alerts_are_read_with_their_times() {
        let got = alertmanager(am(json!([firing("LaneLag")])), 7).unwrap();
        assert!(got.refused.is_empty());
        let s = &got.signals[0];
        assert_eq!(s.name, "LaneLag");
        assert_eq!(s.report, Report::Firing);
        assert_eq!(s.severity, Severity::Critical);
        assert_eq!(s.summary, "lane b1 lags");
        assert_eq!(s.at_ms, 1_796_378_400_250);
        assert_eq!(s.link.as_deref(), Some("http://prom/graph"));
        let mut resolved = firing("LaneLag");
        resolved["status"] = json!("resolved");
        resolved["endsAt"] = json!("2026-12-04T10:05:00Z");
        let got = alertmanager(am(json!([resolved])), 7).unwrap();
        assert_eq!(got.signals[0].report, Report::Resolved);
        assert_eq!(got.signals[0].at_ms, 1_796_378_700_000);
    }

    #[test]
    fn one_bad_alert_is_refused_at_its_path_and_the_rest_taken() {
        let mut no_name = firing("X");
        no_name["labels"]
            .as_object_mut()
            .unwrap()
            .remove("alertname");
        let mut bad_time = firing("Y");
        bad_time["startsAt"] = json!("yesterday");
        let mut bad_label = firing("Z");
        bad_label["labels"]["a-b"] = json!("v");
        let mut long = firing("W");
        long["labels"]["bot"] = json!("x".repeat(MAX_LABEL_VALUE + 1));
        let mut status = firing("V");
        status["status"] = json!("pending");
        let mut nul = firing("Nul\u{0}");
        nul["annotations"]["summary"] = json!("a\u{0}b");
        let body = am(json!([
            firing("A"),
            no_name,
            bad_time,
            42,
            bad_label,
            long,
            status,
            nul
        ]));
        let got = alertmanager(body, 0).unwrap();
        let paths: Vec<&str> = got.refused.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "alerts[1].labels.alertname",
                "alerts[2].startsAt",
                "alerts[3]",
                "alerts[4].labels.a-b",
                "alerts[5].labels.bot",
                "alerts[6].status",
            ]
        );
        assert_eq!(got.refused[4].limit, Some(MAX_LABEL_VALUE as u64));
        assert_eq!(got.signals.len(), 2);
        assert_eq!(got.signals[1].name, "Nul\u{FFFD}");
        assert_eq!(got.signals[1].summary, "a\u{FFFD}b");
    }

    #[test]
    fn a_payload_that_is_not_alertmanagers_is_refused_whole() {
        let cases = [
            (json!([1]), "body"),
            (json!({"alerts": []}), "version"),
            (json!({"version": "3", "alerts": []}), "version"),
            (json!({"version": "4"}), "alerts"),
            (json!({"version": "4", "alerts": {}}), "alerts"),
        ];
        for (body, path) in cases {
            let r = alertmanager(body.clone(), 0).unwrap_err();
            assert_eq!(r.path, path, "{body}: {r}");
        }
        let many: Vec<Value> = (0..=MAX_ALERTS).map(|_| firing("A")).collect();
        let r = alertmanager(am(Value::Array(many)), 0).unwrap_err();
        assert_eq!((r.path.as_str(), r.limit), ("alerts", Some(1000)));
    }

    fn pd(action: &str) -> Value {
        json!({
            "routing_key": "R0ut1ngK3y0000000000000000000000",
            "event_action": action,
            "dedup_key": "disk/host-1",
            "payload": {
                "summary": "Disk full on host-1", "source": "host-1", "severity": "error",
                "timestamp": "2026-12-04T10:00:00Z", "component": "postgres",
                "class": "disk", "custom_details": {"free": "0%"}
            },
            "links": [{"href": "http://runbook", "text": "runbook"}]
        })
    }

    #[test]
    fn pagerduty_events_are_read_by_their_key() {
        let got = pagerduty(pd("trigger"), 0).unwrap();
        let s = &got.signals[0];
        assert_eq!(s.name, "disk");
        assert_eq!(s.severity, Severity::Error);
        assert_eq!(s.labels["component"], "postgres");
        assert_eq!(s.dedup_key.as_deref(), Some("disk/host-1"));
        assert_eq!(got.dedup_key.as_deref(), Some("disk/host-1"));
        let ack =
            json!({"routing_key": "k", "event_action": "acknowledge", "dedup_key": "disk/host-1"});
        let got = pagerduty(ack, 5).unwrap();
        assert_eq!(got.signals[0].report, Report::Acknowledged);
        assert_eq!(got.signals[0].at_ms, 5);
    }

    #[test]
    fn an_alert_too_large_for_its_record_is_refused_alone() {
        let mut big = firing("Big");
        for i in 0..8 {
            big["annotations"][format!("note{i}")] = json!("x".repeat(MAX_ANNOTATION));
        }
        let got = alertmanager(am(json!([firing("A"), big])), 0).unwrap();
        assert_eq!(got.signals.len(), 1);
        assert_eq!(got.refused[0].path, "alerts[1]");
        assert_eq!(got.refused[0].limit, Some(MAX_ALERT_BYTES as u64));
    }

    #[test]
    fn a_trigger_without_a_key_is_answered_with_one_that_resolves_it() {
        let mut t = pd("trigger");
        t.as_object_mut().unwrap().remove("dedup_key");
        let got = pagerduty(t.clone(), 0).unwrap();
        let key = got.dedup_key.clone().unwrap();
        assert_eq!(key.len(), 32);
        assert_eq!(got.signals[0].dedup_key.as_deref(), Some(key.as_str()));
        assert_eq!(
            pagerduty(t, 9).unwrap().dedup_key,
            Some(key.clone()),
            "the same trigger, the same key"
        );
        let resolve = json!({"routing_key": "k", "event_action": "resolve", "dedup_key": key});
        let r = pagerduty(resolve, 0).unwrap();
        assert_eq!(
            r.signals[0].fingerprint(&[]),
            got.signals[0].fingerprint(&[])
        );
    }

    #[test]
    fn a_bad_pagerduty_event_names_its_field() {
        let mut unknown = pd("trigger");
        unknown["payload"]["colour"] = json!(1);
        let mut severity = pd("trigger");
        severity["payload"]["severity"] = json!("sev1");
        let mut summary = pd("trigger");
        summary["payload"]["summary"] = json!("s".repeat(MAX_SUMMARY + 1));
        let mut no_key = pd("resolve");
        no_key.as_object_mut().unwrap().remove("dedup_key");
        no_key.as_object_mut().unwrap().remove("payload");
        let mut no_source = pd("trigger");
        no_source["payload"]
            .as_object_mut()
            .unwrap()
            .remove("source");
        let cases = [
            (pd("escalate"), "event_action"),
            (unknown, "payload.colour"),
            (severity, "payload.severity"),
            (summary, "payload.summary"),
            (no_key, "dedup_key"),
            (no_source, "payload.source"),
            (json!({"event_action": "trigger"}), "routing_key"),
        ];
        for (body, path) in cases {
            let r = pagerduty(body.clone(), 0).unwrap_err();
            assert_eq!(r.path, path, "{body}: {r}");
        }
    }
}
