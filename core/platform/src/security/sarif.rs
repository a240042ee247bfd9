//! SARIF 2.1.0 in and out, through `serde-sarif`'s types.
//!
//! Export follows GitHub code scanning's conventions: each rule carries
//! `properties.security-severity` and tags, each result its `ruleId`,
//! `level`, a `partialFingerprints` entry (`oshal/v1`, the finding's
//! fingerprint), a physical location when the finding is in a file and a
//! logical one naming its object always; a suppressed finding carries its
//! justification as an external suppression. There is one run per source.
//!
//! Import reads any conforming log (Trivy, Checkov, Semgrep, …). A run's
//! source is its driver's name, lowercased; a result's rule is `ruleId`,
//! `rule.id` or the rule at `ruleIndex`; its severity comes from
//! `security-severity` (the result's, else its rule's), else from `level`;
//! its object is the artifact's URI (never the line), so several results of
//! one rule in one file are one finding that counts them. Every refusal
//! names the JSON path of the field at fault.

use oshal_kernel::name::Named;
use serde_sarif::sarif::{
    ArtifactLocation, LogicalLocation, Message, MultiformatMessageString, PhysicalLocation,
    PropertyBag, Region, ReportingConfiguration, ReportingDescriptor, Result as SarifResult,
    ResultLevel, Run, Sarif, Suppression as SarifSuppression, Tool, ToolComponent,
};
use std::collections::BTreeMap;

use super::{
    Finding, FindingState, Location, OSHAL, Observation, SecurityError, Severity, checks, invalid,
};

/// The largest SARIF log accepted, in bytes.
pub const MAX_SARIF_BYTES: usize = 32 * 1024 * 1024;
/// The most results one run may hold.
pub const MAX_RESULTS_PER_RUN: usize = 50_000;
/// The most runs one log may hold.
pub const MAX_RUNS: usize = 64;
/// The schema every exported log names.
pub const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";
/// The partial fingerprint key Oshal writes.
pub const FINGERPRINT_KEY: &str = "oshal/v1";

fn level(s: Severity) -> ResultLevel {
    match s {
        Severity::Critical | Severity::High => ResultLevel::Error,
        Severity::Medium => ResultLevel::Warning,
        Severity::Low | Severity::Info => ResultLevel::Note,
    }
}

fn bag(
    entries: impl IntoIterator<Item = (&'static str, serde_json::Value)>,
    tags: Vec<String>,
) -> PropertyBag {
    let mut b = PropertyBag::builder().build();
    b.additional_properties = entries
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    if !tags.is_empty() {
        b.tags = Some(tags);
    }
    b
}

fn text(s: impl Into<String>) -> MultiformatMessageString {
    MultiformatMessageString::builder().text(s.into()).build()
}

fn rule(id: &str, title: &str, severity: Severity, control: Option<&str>) -> ReportingDescriptor {
    let info = checks::check(id);
    let mut tags = vec!["security".to_owned()];
    if let Some(c) = control.filter(|c| !c.is_empty()) {
        tags.push(c.to_owned());
    }
    let mut r = ReportingDescriptor::builder()
        .id(id.to_owned())
        .name(id.replace(['.', '-'], "_"))
        .short_description(text(title))
        .default_configuration(
            ReportingConfiguration::builder()
                .level(serde_json::to_value(level(severity)).unwrap_or_default())
                .build(),
        )
        .properties(bag(
            [(
                "security-severity",
                serde_json::Value::String(format!("{:.1}", severity.score())),
            )],
            tags,
        ))
        .build();
    if let Some(info) = info {
        r.full_description = Some(text(info.rationale));
        r.help = Some(text(format!("Remediation: {}", info.remediation)));
    }
    r
}

fn result(f: &Finding) -> SarifResult {
    let mut location = serde_sarif::sarif::Location::builder()
        .logical_locations(vec![
            LogicalLocation::builder()
                .fully_qualified_name(f.object.clone())
                .kind("object".to_owned())
                .build(),
        ])
        .build();
    if let Some(l) = &f.location {
        let mut physical = PhysicalLocation::builder()
            .artifact_location(ArtifactLocation::builder().uri(l.uri.clone()).build())
            .build();
        if let Some(line) = l.line {
            physical.region = Some(Region::builder().start_line(i64::from(line)).build());
        }
        location.physical_location = Some(physical);
    }
    let mut props = vec![
        (
            "security-severity",
            serde_json::Value::String(format!("{:.1}", f.severity.score())),
        ),
        ("oshal-state", serde_json::json!(f.state.as_str())),
        ("oshal-first-seen-ms", serde_json::json!(f.first_seen_ms)),
        ("oshal-last-seen-ms", serde_json::json!(f.last_seen_ms)),
    ];
    if let Some(t) = f.ticket {
        props.push(("oshal-ticket", serde_json::json!(t.to_string())));
    }
    let mut r = SarifResult::builder()
        .rule_id(f.rule.clone())
        .level(level(f.severity))
        .message(Message::builder().text(f.message.clone()).build())
        .locations(vec![location])
        .partial_fingerprints(BTreeMap::from([(
            FINGERPRINT_KEY.to_owned(),
            f.fingerprint.clone(),
        )]))
        .properties(bag(props, Vec::new()))
        .build();
    if let (FindingState::Suppressed, Some(s)) = (f.state, &f.suppression) {
        r.suppressions = Some(vec![
            SarifSuppression::builder()
                .kind(serde_json::json!("external"))
                .status(serde_json::json!("accepted"))
                .justification(s.reason.clone())
                .build(),
        ]);
    }
    r
}

/// The findings that are not resolved, as one log with a run per source.
pub fn export(findings: &[Finding]) -> serde_json::Value {
    let mut by_source: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    by_source.entry(OSHAL).or_default();
    for f in findings
        .iter()
        .filter(|f| f.state != FindingState::Resolved)
    {
        by_source.entry(&f.source).or_default().push(f);
    }
    let runs = by_source
        .into_iter()
        .map(|(source, found)| {
            let mut rules: Vec<ReportingDescriptor> = Vec::new();
            if source == OSHAL {
                rules.extend(
                    checks::CHECKS
                        .iter()
                        .map(|c| rule(c.id, c.title, c.severity, Some(c.control))),
                );
            }
            for f in &found {
                if !rules.iter().any(|r| r.id == f.rule) {
                    rules.push(rule(&f.rule, &f.title, f.severity, f.control.as_deref()));
                }
            }
            let mut driver = ToolComponent::builder()
                .name(if source == OSHAL {
                    "Oshal".to_owned()
                } else {
                    source.to_owned()
                })
                .rules(rules)
                .build();
            if source == OSHAL {
                driver.full_name = Some("Oshal Security Center".into());
                driver.version = Some(env!("CARGO_PKG_VERSION").into());
                driver.information_uri = Some("https://github.com/oshal/oshal".into());
            }
            Run::builder()
                .tool(Tool::builder().driver(driver).build())
                .results(found.iter().map(|f| result(f)).collect::<Vec<_>>())
                .build()
        })
        .collect::<Vec<_>>();
    let log = Sarif::builder()
        .schema(SCHEMA_URI.to_owned())
        .version(serde_json::json!("2.1.0"))
        .runs(runs)
        .build();
    serde_json::to_value(log).unwrap_or_default()
}

/// A source name from a driver's name: lowercase, `[a-z0-9._-]`, ≤ 64.
fn source_of(name: &str) -> Option<String> {
    let s: String = name
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    (!s.is_empty() && s.len() <= 64).then_some(s)
}

fn severity_of(props: Option<&PropertyBag>) -> Option<Severity> {
    let v = props?.additional_properties.get("security-severity")?;
    let score = match v {
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok()?,
        serde_json::Value::Number(n) => n.as_f64()?,
        _ => return None,
    };
    (score.is_finite() && (0.0..=10.0).contains(&score)).then(|| Severity::from_score(score))
}

fn severity_of_level(level: Option<&serde_json::Value>) -> Option<Severity> {
    match level?.as_str()? {
        "error" => Some(Severity::High),
        "warning" => Some(Severity::Medium),
        "note" => Some(Severity::Low),
        "none" => Some(Severity::Info),
        _ => None,
    }
}

/// Parses a SARIF log into observations, by source.
pub fn import(bytes: &[u8]) -> Result<Vec<(String, Vec<Observation>)>, SecurityError> {
    if bytes.len() > MAX_SARIF_BYTES {
        return Err(SecurityError::TooLarge("body", MAX_SARIF_BYTES));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let log: Sarif = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.inner().to_string();
        invalid(
            crate::text::field_path(&e.path().to_string(), &inner),
            format!("not a SARIF 2.1.0 log: {inner}"),
        )
    })?;
    if log.version.as_str() != Some("2.1.0") {
        return Err(invalid("version", "must be \"2.1.0\""));
    }
    if log.runs.len() > MAX_RUNS {
        return Err(invalid("runs", format!("at most {MAX_RUNS} runs")));
    }
    let mut out = Vec::new();
    for (i, run) in log.runs.iter().enumerate() {
        let driver = &run.tool.driver;
        let source = source_of(&driver.name).ok_or_else(|| {
            invalid(
                format!("runs[{i}].tool.driver.name"),
                "must be 1..=64 characters",
            )
        })?;
        let results = run.results.as_deref().unwrap_or_default();
        if results.len() > MAX_RESULTS_PER_RUN {
            return Err(invalid(
                format!("runs[{i}].results"),
                format!("at most {MAX_RESULTS_PER_RUN} results per run"),
            ));
        }
        let rules = driver.rules.as_deref().unwrap_or_default();
        // (rule, object) → (observation, how many results)
        let mut grouped: BTreeMap<(String, String), (Observation, usize)> = BTreeMap::new();
        for (j, r) in results.iter().enumerate() {
            let at = |field: &str| format!("runs[{i}].results[{j}].{field}");
            let by_index = r
                .rule_index
                .and_then(|k| usize::try_from(k).ok())
                .and_then(|k| rules.get(k));
            let rule_id = r
                .rule_id
                .clone()
                .or_else(|| r.rule.as_ref().and_then(|x| x.id.clone()))
                .or_else(|| by_index.map(|d| d.id.clone()))
                .filter(|id| !id.trim().is_empty())
                .ok_or_else(|| {
                    invalid(
                        at("ruleId"),
                        "a result needs ruleId, rule.id or a ruleIndex into the driver's rules",
                    )
                })?;
            if rule_id.len() > 256 {
                return Err(invalid(at("ruleId"), "longer than 256 bytes"));
            }
            let descriptor = by_index
                .filter(|d| d.id == rule_id)
                .or_else(|| rules.iter().find(|d| d.id == rule_id));
            let severity = severity_of(r.properties.as_ref())
                .or_else(|| descriptor.and_then(|d| severity_of(d.properties.as_ref())))
                .or_else(|| {
                    r.level
                        .map(|l| serde_json::to_value(l).unwrap_or_default())
                        .as_ref()
                        .and_then(|l| severity_of_level(Some(l)))
                })
                .or_else(|| {
                    descriptor
                        .and_then(|d| d.default_configuration.as_ref())
                        .and_then(|c| severity_of_level(c.level.as_ref()))
                })
                .unwrap_or(Severity::Medium);
            let title = descriptor
                .and_then(|d| {
                    d.short_description
                        .as_ref()
                        .map(|s| s.text.clone())
                        .or_else(|| d.name.clone())
                })
                .unwrap_or_else(|| rule_id.clone());
            let first = r.locations.as_deref().and_then(|l| l.first());
            let physical = first.and_then(|l| l.physical_location.as_ref());
            let uri = physical
                .and_then(|p| p.artifact_location.as_ref())
                .and_then(|a| a.uri.clone());
            let logical = first
                .and_then(|l| l.logical_locations.as_deref())
                .and_then(|l| l.first())
                .and_then(|l| l.fully_qualified_name.clone().or_else(|| l.name.clone()));
            let object = match (&uri, &logical) {
                (Some(u), Some(l)) => format!("{u} {l}"),
                (Some(u), None) => u.clone(),
                (None, Some(l)) => l.clone(),
                (None, None) => "(no location)".to_owned(),
            };
            let message = r
                .message
                .text
                .clone()
                .or_else(|| r.message.markdown.clone())
                .unwrap_or_else(|| title.clone());
            let location = uri.map(|uri| Location {
                uri,
                line: physical
                    .and_then(|p| p.region.as_ref())
                    .and_then(|g| g.start_line)
                    .and_then(|l| u32::try_from(l).ok()),
            });
            let entry = grouped
                .entry((rule_id.clone(), object.clone()))
                .or_insert_with(|| {
                    (
                        Observation {
                            rule: rule_id,
                            title: crate::text::clip(&title, 300).to_owned(),
                            control: None,
                            severity,
                            object: crate::text::clip(&object, 1000).to_owned(),
                            message: crate::text::clip(&message, 4000).to_owned(),
                            location,
                        },
                        0,
                    )
                });
            entry.1 += 1;
            entry.0.severity = entry.0.severity.max(severity);
        }
        let observations = grouped
            .into_values()
            .map(|(mut o, n)| {
                if n > 1 {
                    o.message = format!(
                        "{} (and {} more results in the same place)",
                        o.message,
                        n - 1
                    );
                }
                o
            })
            .collect();
        out.push((source, observations));
    }
    Ok(out)
}
