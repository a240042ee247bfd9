//! What the operator tells the monitor: which labels make an alert's
//! fingerprint, the correlation rules that open incidents, silences and
//! maintenance windows. Matchers are written as Alertmanager writes them
//! (`severity="critical"`, `alertname!="Watchdog"`, `bot=~"b[0-9]+"`,
//! regular expressions anchored at both ends). Heal rules: which
//! diagnosed cause an action heals, once per incident, after an approval.
//! Every refusal names the field's JSON path. Pure logic.

use serde::{Deserialize, Serialize};
use specta::Type;

use oshal_kernel::clock::UnixMs;

use crate::alert::{Labels, check_label_name};
use crate::diagnose::CauseKind;

/// Rules one tenant may hold.
pub const MAX_RULES: usize = 64;
/// Matchers one rule, silence or window may hold.
pub const MAX_MATCHERS: usize = 16;
/// Labels a rule may group by, or a fingerprint be made of.
pub const MAX_GROUP_BY: usize = 16;
/// The longest correlation window: a day.
pub const MAX_WINDOW_SECS: u32 = 86_400;
/// The most alerts a threshold may ask for.
pub const MAX_THRESHOLD: u32 = 500;
/// Bytes of one matcher.
pub const MAX_MATCHER: usize = 1024;
/// Heal rules one tenant may hold.
pub const MAX_HEAL_RULES: usize = 32;
/// The most attempts a heal's ticket may take.
pub const MAX_HEAL_ATTEMPTS: u32 = 3;
/// The most heals of one rule running at once.
pub const MAX_HEAL_CONCURRENCY: u32 = 8;
/// The most a budget may be raised by, in percent.
pub const MAX_RAISE_PERCENT: u32 = 1000;
/// The most minutes of a runaway's spend a cap may leave: more would not
/// bound the runaway (`diagnose::BOUNDED_MINS`), and its re-check would
/// find it still running away.
pub const MAX_CAP_MINUTES: u32 = crate::diagnose::BOUNDED_MINS;

/// When an incident a rule opened resolves by itself (Keep's words).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    Serialize,
    Deserialize,
    Type,
    utoipa::ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ResolveOn {
    /// When the alert that opened it resolves.
    First,
    /// When the alert that joined it last resolves.
    Last,
    /// When every alert in it has resolved.
    #[default]
    All,
    /// Only when someone resolves it.
    Never,
}

/// A correlation rule: alerts it matches, grouped by the values of some
/// labels, open an incident once `threshold` of them fire within
/// `window_secs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrelationRule {
    pub name: String,
    /// Alertmanager matchers, all of which must hold (none: every alert).
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Labels whose values make the group (none: one group).
    #[serde(default)]
    pub group_by: Vec<String>,
    /// How close together the alerts that reach the threshold must be.
    pub window_secs: u32,
    /// Alerts of one group it takes to open an incident (at least 1).
    #[serde(default = "one")]
    pub threshold: u32,
    /// Count only alerts still firing (the default); else a resolved one
    /// within the window counts too (flapping).
    #[serde(default = "yes")]
    pub firing_only: bool,
    #[serde(default)]
    pub resolve_on: ResolveOn,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

/// A silence, in Alertmanager's sense: alerts it matches between its
/// times are kept as `SUPPRESSED` and open nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Silence {
    pub matchers: Vec<String>,
    #[specta(type = specta_typescript::Number)]
    pub starts_ms: UnixMs,
    #[specta(type = specta_typescript::Number)]
    pub ends_ms: UnixMs,
    pub comment: String,
}

/// A maintenance window: alerts it matches between its times are kept as
/// `MAINTENANCE` and open nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    pub matchers: Vec<String>,
    #[specta(type = specta_typescript::Number)]
    pub starts_ms: UnixMs,
    #[specta(type = specta_typescript::Number)]
    pub ends_ms: UnixMs,
    pub reason: String,
}

/// One tenant's settings of the monitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename = "MonitorSettings")]
#[schema(as = MonitorSettings)]
pub struct Settings {
    /// Label names an alert's fingerprint is made of (none: every label).
    #[serde(default)]
    pub fingerprint_by: Vec<String>,
    /// Tried in order; the first that matches an alert takes it.
    pub rules: Vec<CorrelationRule>,
    /// Whether each incident opened is investigated by a Gather ticket
    /// (read-only, boxed in by the connector broker); on unless turned off.
    #[serde(default = "on")]
    pub investigate: bool,
    /// Heal rules, tried in order against an investigation's top cause
    /// (the shipped ones unless set).
    #[serde(default = "HealRule::shipped")]
    pub heal: Vec<HealRule>,
    /// The shipped heal rules these settings have been offered, by name.
    /// A rule shipped since is added at the end of `heal` when they are
    /// set or read back ([`Settings::offer_shipped`]); one a person took
    /// out stays out while its name is here. Absent (settings saved
    /// before this field): the rules shipped until then.
    #[serde(default = "offered_before")]
    pub offered: Vec<String>,
}

/// The heal rules shipped before settings said which they were offered.
const SHIPPED_BEFORE_OFFERED: [&str; 3] = [
    "raise-exhausted-budget",
    "retire-lost-node",
    "replay-after-outside-failure",
];

fn offered_before() -> Vec<String> {
    SHIPPED_BEFORE_OFFERED.map(str::to_owned).to_vec()
}

impl Settings {
    /// Adds each shipped heal rule not offered yet at the end of `heal`
    /// (unless one of its name is there, or the list is full) and notes
    /// it offered: a rule shipped after the settings were saved reaches
    /// them, and a rule a person took out is not put back.
    pub fn offer_shipped(&mut self) {
        for rule in HealRule::shipped() {
            if self.offered.contains(&rule.name) {
                continue;
            }
            self.offered.push(rule.name.clone());
            if self.heal.len() < MAX_HEAL_RULES && self.heal.iter().all(|h| h.name != rule.name) {
                self.heal.push(rule);
            }
        }
    }
}

/// What a heal rule does, as a template the adapter fills in from the
/// cause and the platform's figures when it proposes the heal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionTemplate {
    /// Raise the budget of the tenant the cause names: to `percent` more
    /// than the larger of its budget and its spend (at least one dollar).
    RaiseBudget { percent: u32 },
    /// Lower the budget of the tenant the cause names (a runaway spend)
    /// to what it has spent plus what it would spend in `minutes` more
    /// at its current rate (never above its budget): the runaway stops
    /// within those minutes, and a person sets the budget again once it
    /// is found. A raise heal leaves a capped budget be. Never the
    /// `default` tenant's: the loop's own work would be refused.
    CapBudget { minutes: u32 },
    /// Run again, each once as a new ticket, the tenant's tickets that
    /// died of the cause (an outside system's failures, a poison input)
    /// since shortly before the incident opened: for once the cause is
    /// fixed (the outside system answers again, the input is corrected).
    ReplayDead,
    /// Revoke the standing grants on the connector the cause names (an
    /// outside system failing): its calls are denied, not sent, until a
    /// person grants them again.
    RevokeGrants,
    /// Retire the lost node the cause names: its bots leave the view and
    /// its alert resolves (its work was requeued when it was lost); a bot
    /// of it that registers again joins as a new one.
    RetireNode,
    /// Drain the live bot the cause names (a slow model): it finishes what
    /// it holds and is routed nothing more until a person uncordons it;
    /// the tickets waiting in its lane go to other bots with its skills.
    DrainBot,
    /// Drain the node of the slow bot the cause names, when every live
    /// bot of that node is slow (the model server they share, not one
    /// bot): each is routed nothing more until a person uncordons the
    /// node; what waits in their lanes goes to other nodes' bots.
    DrainNode,
    /// Pause the tenant the incident's first alert names (its tickets
    /// dying of a poison input, or of an outside system failing): they
    /// are admitted and kept, not routed, until a person resumes it.
    PauseTenant,
    /// Rotate the connector credential the exposed secret is (an OAuth2
    /// refresh token, now or one it replaced): a new one stored, the old
    /// and exposed ones ended and proved refused, the new one proved
    /// working, and the finding suppressed with what was done. A secret
    /// that is no stored credential, or a static key, is not proposed.
    RotateCredential,
    /// Restart the node of the slow bot the cause names: it stops as on
    /// SIGTERM (what its bots held goes back to the queue) and starts
    /// again under its name as a new run, with fresh connections and
    /// memory. It heals what the node's own process holds (a wedged
    /// client, a leak), not a slow model server its bots share: then the
    /// re-check still fails and the heal says so. No shipped rule takes
    /// it; an operator's rule may, in place of a drain.
    RestartNode,
}

impl ActionTemplate {
    /// The causes it can heal.
    pub fn heals(&self) -> &'static [CauseKind] {
        match self {
            ActionTemplate::RaiseBudget { .. } => &[CauseKind::BudgetExhausted],
            ActionTemplate::CapBudget { .. } => &[CauseKind::RunawaySpend],
            ActionTemplate::ReplayDead => {
                &[CauseKind::OutsideSystemFailing, CauseKind::PoisonInput]
            }
            ActionTemplate::RevokeGrants => &[CauseKind::OutsideSystemFailing],
            ActionTemplate::RetireNode => &[CauseKind::NodeDown],
            ActionTemplate::DrainBot | ActionTemplate::DrainNode | ActionTemplate::RestartNode => {
                &[CauseKind::SlowModel]
            }
            ActionTemplate::PauseTenant => {
                &[CauseKind::PoisonInput, CauseKind::OutsideSystemFailing]
            }
            ActionTemplate::RotateCredential => &[CauseKind::SecretExposed],
        }
    }

    fn name(&self) -> &'static str {
        match self {
            ActionTemplate::RaiseBudget { .. } => "raise_budget",
            ActionTemplate::CapBudget { .. } => "cap_budget",
            ActionTemplate::ReplayDead => "replay_dead",
            ActionTemplate::RevokeGrants => "revoke_grants",
            ActionTemplate::RetireNode => "retire_node",
            ActionTemplate::DrainBot => "drain_bot",
            ActionTemplate::DrainNode => "drain_node",
            ActionTemplate::PauseTenant => "pause_tenant",
            ActionTemplate::RotateCredential => "rotate_credential",
            ActionTemplate::RestartNode => "restart_node",
        }
    }
}

/// A heal rule (StackStorm's trigger, criteria, action): a diagnosis whose
/// top cause is conclusive and of kind `trigger`, for an incident whose
/// first alert the `matchers` match, proposes `action`, at most once per
/// incident (throttled until it resolves). The action runs only once a
/// person approves it, as a ticket of `max_attempts` tries; at most
/// `concurrency` heals of the rule run at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealRule {
    pub name: String,
    pub trigger: CauseKind,
    /// Alertmanager matchers over the incident's first alert's labels
    /// (none: any).
    #[serde(default)]
    pub matchers: Vec<String>,
    pub action: ActionTemplate,
    /// Tries of the heal's ticket (retry), 1 to 3.
    #[serde(default = "two")]
    pub max_attempts: u32,
    /// Heals of this rule running at once, 1 to 8.
    #[serde(default = "one")]
    pub concurrency: u32,
}

fn two() -> u32 {
    2
}

impl HealRule {
    /// The rules the platform ships.
    pub fn shipped() -> Vec<HealRule> {
        vec![
            HealRule {
                name: "raise-exhausted-budget".into(),
                trigger: CauseKind::BudgetExhausted,
                matchers: vec!["alertname=\"OshalBudgetExhausted\"".into()],
                action: ActionTemplate::RaiseBudget { percent: 50 },
                max_attempts: 2,
                concurrency: 1,
            },
            HealRule {
                name: "retire-lost-node".into(),
                trigger: CauseKind::NodeDown,
                matchers: vec!["alertname=\"OshalNodeLost\"".into()],
                action: ActionTemplate::RetireNode,
                max_attempts: 2,
                concurrency: 1,
            },
            HealRule {
                name: "replay-after-outside-failure".into(),
                trigger: CauseKind::OutsideSystemFailing,
                matchers: vec!["alertname=\"OshalTicketsDead\"".into()],
                action: ActionTemplate::ReplayDead,
                max_attempts: 2,
                concurrency: 1,
            },
            HealRule {
                name: "drain-slow-node".into(),
                trigger: CauseKind::SlowModel,
                matchers: vec!["alertname=\"OshalLaneLag\"".into()],
                action: ActionTemplate::DrainNode,
                max_attempts: 2,
                concurrency: 1,
            },
            HealRule {
                name: "drain-slow-bot".into(),
                trigger: CauseKind::SlowModel,
                matchers: vec!["alertname=\"OshalLaneLag\"".into()],
                action: ActionTemplate::DrainBot,
                max_attempts: 2,
                concurrency: 1,
            },
            HealRule {
                name: "cap-runaway-spend".into(),
                trigger: CauseKind::RunawaySpend,
                matchers: vec!["alertname=\"OshalSpendBurning\"".into()],
                action: ActionTemplate::CapBudget { minutes: 10 },
                max_attempts: 2,
                concurrency: 1,
            },
            HealRule {
                name: "rotate-exposed-credential".into(),
                trigger: CauseKind::SecretExposed,
                matchers: vec!["alertname=\"OshalSecretFound\"".into()],
                action: ActionTemplate::RotateCredential,
                max_attempts: 2,
                concurrency: 1,
            },
        ]
    }

    fn check(&self, at: impl Fn(&str) -> String) -> Result<(), Invalid> {
        check_name(&at("name"), &self.name)?;
        matchers(&at("matchers"), &self.matchers)?;
        let bounded = match self.action {
            ActionTemplate::RaiseBudget { percent } => {
                Some(("action.percent", percent, MAX_RAISE_PERCENT, "percent"))
            }
            ActionTemplate::CapBudget { minutes } => {
                Some(("action.minutes", minutes, MAX_CAP_MINUTES, "minutes"))
            }
            _ => None,
        };
        if let Some((field, n, max, unit)) = bounded
            && (n == 0 || n > max)
        {
            return Err(Invalid {
                path: at(field),
                reason: format!("must be 1 to {max} {unit}"),
                limit: Some(u64::from(max)),
            });
        }
        let heals = self.action.heals();
        if !heals.contains(&self.trigger) {
            let kind: &'static str = self.trigger.into();
            let can: Vec<&'static str> = heals.iter().map(|k| k.into()).collect();
            return Err(invalid(
                at("trigger"),
                format!(
                    "{} heals {}, not {kind}",
                    self.action.name(),
                    can.join(" or ")
                ),
            ));
        }
        for (field, value, max) in [
            ("max_attempts", self.max_attempts, MAX_HEAL_ATTEMPTS),
            ("concurrency", self.concurrency, MAX_HEAL_CONCURRENCY),
        ] {
            if value == 0 || value > max {
                return Err(Invalid {
                    path: at(field),
                    reason: format!("must be 1 to {max}"),
                    limit: Some(u64::from(max)),
                });
            }
        }
        Ok(())
    }
}

fn check_name(path: &str, name: &str) -> Result<(), Invalid> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(path, "must be 1 to 64 of [A-Za-z0-9_-]"));
    }
    Ok(())
}

fn on() -> bool {
    true
}

impl Default for Settings {
    /// One rule: any alert firing opens an incident, one per alert name
    /// and tenant label (one tenant's trouble is never healed or closed
    /// with another's), resolved when all its alerts have.
    fn default() -> Self {
        Self {
            investigate: true,
            heal: HealRule::shipped(),
            offered: HealRule::shipped().into_iter().map(|r| r.name).collect(),
            fingerprint_by: Vec::new(),
            rules: vec![CorrelationRule {
                name: "by-alertname-and-tenant".into(),
                matchers: Vec::new(),
                group_by: vec!["alertname".into(), "tenant".into()],
                window_secs: 300,
                threshold: 1,
                firing_only: true,
                resolve_on: ResolveOn::All,
            }],
        }
    }
}

/// A refusal of the settings, a silence or a window, at a JSON path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct Invalid {
    pub path: String,
    pub reason: String,
    pub limit: Option<u64>,
}

fn invalid(path: impl Into<String>, reason: impl Into<String>) -> Invalid {
    Invalid {
        path: path.into(),
        reason: reason.into(),
        limit: None,
    }
}

fn over(path: impl Into<String>, what: &str, n: usize, max: usize) -> Invalid {
    Invalid {
        path: path.into(),
        reason: format!("holds {n} {what}; the limit is {max}"),
        limit: Some(max as u64),
    }
}

/// One matcher, parsed.
#[derive(Debug, Clone)]
pub struct Matcher {
    label: String,
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    Eq(String),
    Ne(String),
    Re(regex::Regex),
    NotRe(regex::Regex),
}

impl Matcher {
    /// `name="value"`, `name!="value"`, `name=~"re"`, `name!~"re"` (the
    /// quotes optional).
    pub fn parse(s: &str) -> Result<Self, String> {
        let at = s
            .find(['=', '!'])
            .ok_or_else(|| format!("{s:?} is not label=\"value\", !=, =~ or !~"))?;
        let label = s[..at].trim();
        check_label_name(label)?;
        let rest = &s[at..];
        let (op, value) = ["!~", "=~", "!=", "="]
            .iter()
            .find_map(|op| rest.strip_prefix(op).map(|v| (*op, v)))
            .ok_or_else(|| format!("{s:?}: the operator must be =, !=, =~ or !~"))?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value)
            .to_owned();
        let re = |v: &str| {
            regex::Regex::new(&format!("^(?:{v})$"))
                .map_err(|e| format!("{s:?}: not a regular expression ({e})"))
        };
        let op = match op {
            "=" => Op::Eq(value),
            "!=" => Op::Ne(value),
            "=~" => Op::Re(re(&value)?),
            _ => Op::NotRe(re(&value)?),
        };
        Ok(Self {
            label: label.to_owned(),
            op,
        })
    }

    /// Whether `labels` satisfy it (a missing label reads as empty, as in
    /// Alertmanager).
    pub fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.label).map_or("", String::as_str);
        match &self.op {
            Op::Eq(want) => v == want,
            Op::Ne(want) => v != want,
            Op::Re(re) => re.is_match(v),
            Op::NotRe(re) => !re.is_match(v),
        }
    }
}

/// Matchers, each parsed, or the first refused at `path[i]`.
pub fn matchers(path: &str, raw: &[String]) -> Result<Vec<Matcher>, Invalid> {
    if raw.len() > MAX_MATCHERS {
        return Err(over(path, "matchers", raw.len(), MAX_MATCHERS));
    }
    raw.iter()
        .enumerate()
        .map(|(i, m)| {
            if m.len() > MAX_MATCHER {
                return Err(Invalid {
                    path: format!("{path}[{i}]"),
                    reason: format!("is {} bytes; the limit is {MAX_MATCHER}", m.len()),
                    limit: Some(MAX_MATCHER as u64),
                });
            }
            Matcher::parse(m).map_err(|why| invalid(format!("{path}[{i}]"), why))
        })
        .collect()
}

/// Whether every matcher holds (an empty list matches everything).
pub fn all_match(ms: &[Matcher], labels: &Labels) -> bool {
    ms.iter().all(|m| m.matches(labels))
}

fn names(path: &str, raw: &[String]) -> Result<(), Invalid> {
    if raw.len() > MAX_GROUP_BY {
        return Err(over(path, "labels", raw.len(), MAX_GROUP_BY));
    }
    for (i, n) in raw.iter().enumerate() {
        check_label_name(n).map_err(|why| invalid(format!("{path}[{i}]"), why))?;
    }
    Ok(())
}

fn short_text(path: &str, s: &str, max: usize) -> Result<(), Invalid> {
    if s.len() > max || s.contains('\0') {
        return Err(Invalid {
            path: path.into(),
            reason: format!("must be at most {max} bytes, without NUL"),
            limit: Some(max as u64),
        });
    }
    Ok(())
}

impl Settings {
    /// Every field checked; the first refusal at its path.
    pub fn check(&self) -> Result<(), Invalid> {
        names("fingerprint_by", &self.fingerprint_by)?;
        if self.rules.len() > MAX_RULES {
            return Err(over("rules", "rules", self.rules.len(), MAX_RULES));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            let at = |f: &str| format!("rules[{i}].{f}");
            check_name(&at("name"), &r.name)?;
            if !seen.insert(r.name.as_str()) {
                return Err(invalid(at("name"), format!("{:?} is named twice", r.name)));
            }
            matchers(&at("matchers"), &r.matchers)?;
            names(&at("group_by"), &r.group_by)?;
            if r.window_secs == 0 || r.window_secs > MAX_WINDOW_SECS {
                return Err(Invalid {
                    path: at("window_secs"),
                    reason: format!("must be 1 to {MAX_WINDOW_SECS} seconds"),
                    limit: Some(u64::from(MAX_WINDOW_SECS)),
                });
            }
            if r.threshold == 0 || r.threshold > MAX_THRESHOLD {
                return Err(Invalid {
                    path: at("threshold"),
                    reason: format!("must be 1 to {MAX_THRESHOLD} alerts"),
                    limit: Some(u64::from(MAX_THRESHOLD)),
                });
            }
        }
        if self.offered.len() > MAX_HEAL_RULES {
            return Err(over("offered", "names", self.offered.len(), MAX_HEAL_RULES));
        }
        for (i, name) in self.offered.iter().enumerate() {
            check_name(&format!("offered[{i}]"), name)?;
        }
        if self.heal.len() > MAX_HEAL_RULES {
            return Err(over("heal", "heal rules", self.heal.len(), MAX_HEAL_RULES));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, r) in self.heal.iter().enumerate() {
            r.check(|f| format!("heal[{i}].{f}"))?;
            if !seen.insert(r.name.as_str()) {
                return Err(invalid(
                    format!("heal[{i}].name"),
                    format!("{:?} is named twice", r.name),
                ));
            }
        }
        Ok(())
    }
}

fn span(starts: UnixMs, ends: UnixMs) -> Result<(), Invalid> {
    if ends <= starts {
        return Err(invalid("ends_ms", "must be after starts_ms"));
    }
    Ok(())
}

impl Silence {
    pub fn check(&self) -> Result<Vec<Matcher>, Invalid> {
        if self.matchers.is_empty() {
            return Err(invalid("matchers", "a silence needs at least one matcher"));
        }
        span(self.starts_ms, self.ends_ms)?;
        short_text("comment", &self.comment, 1024)?;
        if self.comment.trim().is_empty() {
            return Err(invalid("comment", "say why: a silence needs a comment"));
        }
        matchers("matchers", &self.matchers)
    }
}

impl MaintenanceWindow {
    pub fn check(&self) -> Result<Vec<Matcher>, Invalid> {
        span(self.starts_ms, self.ends_ms)?;
        short_text("reason", &self.reason, 1024)?;
        matchers("matchers", &self.matchers)
    }
}

#[cfg(test)]
mod tests;
