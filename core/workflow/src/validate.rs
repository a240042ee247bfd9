//! The checks of meaning a spec passes before anything runs it, each
//! refusal at the JSON path of the field: the shape of each node, names
//! and references, `depends` expressions, cycles (the path named), limits,
//! timeouts, placeholders, and what the live registry says of each task's
//! kind. A [`Workflow`] is a spec that passed them, with its DAG.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::expr::Expr;
use crate::spec::{
    API_VERSION, Items, MAX_ITEMS, MAX_NODES, NodeSpec, SUB_WORKFLOW, SpecError, TaskSpec,
    WorkflowSpec,
};
use crate::template::{self, Ref};

/// What the platform knows of tasks: their kinds, and any check the live
/// registry can make of one (its connector, its grants).
pub trait Registry {
    /// Refusals of `task` at `at` (`$.nodes[2].task`); none if it may run.
    fn check_task(&self, task: &TaskSpec, at: &str) -> Vec<SpecError>;

    /// Whether `task`'s work reports progress while it runs, so a
    /// `heartbeat` timeout can be kept; when not, one is refused (it would
    /// end every attempt).
    fn heartbeats(&self, _task: &TaskSpec) -> bool {
        true
    }

    /// Refusals of approver names at `at`; any name passes by default.
    fn check_approvers(&self, _names: &[String], _at: &str) -> Vec<SpecError> {
        Vec::new()
    }
}

/// A registry that knows kinds by name and nothing else.
pub struct Kinds<'a>(pub &'a [&'a str]);

impl Registry for Kinds<'_> {
    fn check_task(&self, task: &TaskSpec, at: &str) -> Vec<SpecError> {
        if self.0.contains(&task.kind.as_str()) {
            return Vec::new();
        }
        vec![SpecError::new(
            format!("{at}.kind"),
            "unknown_kind",
            format!(
                "{:?} is not a kind of ticket; the kinds are {}",
                task.kind,
                self.0.join(", ")
            ),
        )]
    }
}

/// A spec that passed every check, with its DAG.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub spec: WorkflowSpec,
    pub hash: String,
    /// Per node (by index): what it waits on, its nodes' indexes.
    pub upstream: Vec<Vec<usize>>,
    /// Per node: its condition (`depends`, or `dependencies` as `a && b`).
    pub condition: Vec<Option<Expr>>,
    /// Node indexes, each after everything it waits on.
    pub order: Vec<usize>,
    /// Per node: every node it waits on, directly or not.
    pub ancestors: Vec<BTreeSet<usize>>,
}

impl Workflow {
    /// Checks `spec` whole; every refusal found, not only the first.
    pub fn new(spec: WorkflowSpec, registry: &dyn Registry) -> Result<Workflow, Vec<SpecError>> {
        let mut errors = Vec::new();
        check_head(&spec, &mut errors);
        let index: BTreeMap<&str, usize> = spec
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        let mut upstream = vec![Vec::new(); spec.nodes.len()];
        let mut condition = vec![None; spec.nodes.len()];
        for (i, node) in spec.nodes.iter().enumerate() {
            let at = format!("$.nodes[{i}]");
            check_node(&spec, node, &at, registry, &mut errors);
            if let Some((cond, names, field)) = edges(node, &at, &mut errors) {
                for name in names {
                    match index.get(name.as_str()) {
                        Some(&j) if j == i => errors.push(SpecError::new(
                            format!("{at}.{field}"),
                            "cycle",
                            format!("{} depends on itself", node.name),
                        )),
                        Some(&j) => upstream[i].push(j),
                        None => errors.push(SpecError::new(
                            format!("{at}.{field}"),
                            "undefined",
                            format!("{name:?} is not a node of this workflow"),
                        )),
                    }
                }
                upstream[i].sort_unstable();
                upstream[i].dedup();
                condition[i] = cond;
            }
        }
        let order = match topological(&spec, &upstream) {
            Ok(order) => order,
            Err(cycle) => {
                let first = cycle[0];
                let field = if spec.nodes[first].depends.is_some() {
                    "depends"
                } else {
                    "dependencies"
                };
                let path: Vec<&str> = cycle.iter().map(|&i| spec.nodes[i].name.as_str()).collect();
                errors.push(SpecError::new(
                    format!("$.nodes[{first}].{field}"),
                    "cycle",
                    format!("a cycle: {} → {}", path.join(" → "), path[0]),
                ));
                Vec::new()
            }
        };
        let mut ancestors = vec![BTreeSet::new(); spec.nodes.len()];
        for &i in &order {
            let mut all = BTreeSet::new();
            for &j in &upstream[i] {
                all.insert(j);
                all.extend(ancestors[j].iter().copied());
            }
            ancestors[i] = all;
        }
        if errors.is_empty() {
            for (i, node) in spec.nodes.iter().enumerate() {
                check_placeholders(&spec, node, i, &index, &ancestors[i], &mut errors);
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let hash = spec.hash();
        Ok(Workflow {
            spec,
            hash,
            upstream,
            condition,
            order,
            ancestors,
        })
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.spec.nodes.iter().position(|n| n.name == name)
    }

    /// Every node downstream of `i`, directly or not.
    pub fn descendants(&self, i: usize) -> BTreeSet<usize> {
        (0..self.spec.nodes.len())
            .filter(|&j| self.ancestors[j].contains(&i))
            .collect()
    }

    /// The run's inputs: those given, and the defaults of the rest; a
    /// missing or unknown one refused at `$.inputs.<name>`.
    pub fn inputs(&self, given: &Map<String, Value>) -> Result<Map<String, Value>, SpecError> {
        if let Some(name) = given.keys().find(|k| !self.spec.inputs.contains_key(*k)) {
            return Err(SpecError::new(
                format!("$.inputs.{name}"),
                "undefined",
                format!(
                    "the workflow has no input {name:?}; its inputs are {}",
                    names(self.spec.inputs.keys())
                ),
            ));
        }
        let mut out = Map::new();
        for (name, input) in &self.spec.inputs {
            let value = given
                .get(name)
                .or(input.default.as_ref())
                .cloned()
                .ok_or_else(|| {
                    SpecError::new(
                        format!("$.inputs.{name}"),
                        "required",
                        format!("input {name:?} has no default; the run must give it"),
                    )
                })?;
            out.insert(name.clone(), value);
        }
        Ok(out)
    }
}

fn names<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = it.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Whether `name` is 1 to `max` of a-z, 0-9 and `extra`, starting with a letter.
fn good_name(name: &str, max: usize, extra: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || extra.contains(&b))
}

fn check_head(spec: &WorkflowSpec, errors: &mut Vec<SpecError>) {
    if spec.api_version != API_VERSION {
        errors.push(SpecError::new(
            "$.api_version",
            "version",
            format!(
                "{:?} is not read here; write {API_VERSION:?}",
                spec.api_version
            ),
        ));
    }
    if !good_name(&spec.name, 64, b"-") {
        errors.push(SpecError::new(
            "$.name",
            "name",
            format!(
                "{:?} must be 1 to 64 of a-z, 0-9 and '-', starting with a letter",
                spec.name
            ),
        ));
    }
    for name in spec.inputs.keys() {
        if !good_name(name, 48, b"_-") {
            errors.push(SpecError::new(
                format!("$.inputs.{name}"),
                "name",
                "an input's name must be 1 to 48 of a-z, 0-9, '_' and '-', starting with a letter",
            ));
        }
    }
    if spec.nodes.is_empty() || spec.nodes.len() > MAX_NODES {
        errors.push(SpecError::new(
            "$.nodes",
            "limit",
            format!(
                "{} nodes; a workflow has 1 to {MAX_NODES}",
                spec.nodes.len()
            ),
        ));
    }
    let mut seen = BTreeMap::new();
    for (i, n) in spec.nodes.iter().enumerate() {
        if let Some(first) = seen.insert(n.name.as_str(), i) {
            errors.push(SpecError::new(
                format!("$.nodes[{i}].name"),
                "duplicate",
                format!("{:?} is also the name of $.nodes[{first}]", n.name),
            ));
        }
    }
    if let Some(r) = &spec.defaults.retry {
        check_retry(r, "$.defaults.retry", errors);
    }
}

fn check_retry(r: &crate::spec::RetryPolicy, at: &str, errors: &mut Vec<SpecError>) {
    if !(1..=20).contains(&r.maximum_attempts) {
        errors.push(SpecError::new(
            format!("{at}.maximum_attempts"),
            "limit",
            format!("{} is outside 1..=20", r.maximum_attempts),
        ));
    }
    if !(1.0..=10.0).contains(&r.backoff_coefficient) {
        errors.push(SpecError::new(
            format!("{at}.backoff_coefficient"),
            "limit",
            format!("{} is outside 1.0..=10.0", r.backoff_coefficient),
        ));
    }
    if r.initial_interval > r.maximum_interval {
        errors.push(SpecError::new(
            format!("{at}.initial_interval"),
            "limit",
            format!(
                "{} is longer than maximum_interval {}",
                r.initial_interval, r.maximum_interval
            ),
        ));
    }
}

fn check_node(
    spec: &WorkflowSpec,
    node: &NodeSpec,
    at: &str,
    registry: &dyn Registry,
    errors: &mut Vec<SpecError>,
) {
    if !good_name(&node.name, 48, b"_-") {
        errors.push(SpecError::new(
            format!("{at}.name"),
            "name",
            format!(
                "{:?} must be 1 to 48 of a-z, 0-9, '_' and '-', starting with a letter",
                node.name
            ),
        ));
    }
    match (&node.task, &node.approval) {
        (Some(task), None) => {
            errors.extend(registry.check_task(task, &format!("{at}.task")));
            if task.priority.is_some_and(|p| p > 9) {
                errors.push(SpecError::new(
                    format!("{at}.task.priority"),
                    "limit",
                    "0..=9",
                ));
            }
            if spec.timeouts_of(node).heartbeat.is_some() && !registry.heartbeats(task) {
                errors.push(SpecError::new(
                    format!("{at}.timeouts.heartbeat"),
                    "unsupported",
                    format!(
                        "a {} ticket reports no progress while it runs, so a heartbeat timeout would end every attempt; use start_to_close",
                        task.kind
                    ),
                ));
            }
            let pinned = task.payload.get("version").is_some_and(|v| !v.is_null());
            if node.memoize && task.kind == SUB_WORKFLOW && !pinned {
                errors.push(SpecError::new(
                    format!("{at}.memoize"),
                    "shape",
                    "a sub-workflow is memoized only with a pinned version (task.payload.version): the latest version may change",
                ));
            }
            if spec.timeouts_of(node).start_to_close.is_none() {
                errors.push(SpecError::new(
                    format!("{at}.timeouts.start_to_close"),
                    "timeout_required",
                    "a task needs a start_to_close timeout (its own, or defaults.timeouts)",
                ));
            }
        }
        (None, Some(approval)) => {
            if node.concurrency.is_some() {
                errors.push(SpecError::new(
                    format!("{at}.concurrency"),
                    "shape",
                    "an approval takes no concurrency group; put it on a task",
                ));
            }
            if node.is_fan_out() {
                errors.push(SpecError::new(
                    at,
                    "shape",
                    "an approval cannot fan out; put matrix or with_items on a task",
                ));
            }
            errors.extend(
                registry.check_approvers(&approval.approvers, &format!("{at}.approval.approvers")),
            );
            if let Some(esc) = &approval.escalation {
                errors.extend(
                    registry.check_approvers(&esc.to, &format!("{at}.approval.escalation.to")),
                );
            }
            if approval.approvers.is_empty() {
                errors.push(SpecError::new(
                    format!("{at}.approval.approvers"),
                    "required",
                    "name at least one approver",
                ));
            }
            if let Some(esc) = &approval.escalation {
                if esc.after >= approval.timeout {
                    errors.push(SpecError::new(
                        format!("{at}.approval.escalation.after"),
                        "limit",
                        format!(
                            "{} is not before the timeout {}",
                            esc.after, approval.timeout
                        ),
                    ));
                }
                if esc.to.is_empty() {
                    errors.push(SpecError::new(
                        format!("{at}.approval.escalation.to"),
                        "required",
                        "name whom to escalate to",
                    ));
                }
            }
            if approval
                .input_schema
                .as_ref()
                .is_some_and(|s| !s.is_object())
            {
                errors.push(SpecError::new(
                    format!("{at}.approval.input_schema"),
                    "shape",
                    "a JSON Schema is an object",
                ));
            }
        }
        (Some(_), Some(_)) => errors.push(SpecError::new(
            at,
            "shape",
            "a node is a task or an approval, not both",
        )),
        (None, None) => errors.push(SpecError::new(
            at,
            "shape",
            "a node needs a task or an approval",
        )),
    }
    if node.matrix.is_some() && node.with_items.is_some() {
        errors.push(SpecError::new(
            format!("{at}.with_items"),
            "shape",
            "a node fans out by matrix or by with_items, not both",
        ));
    }
    if let Some(items) = &node.with_items {
        check_items(items, &format!("{at}.with_items"), errors);
    }
    if let Some(matrix) = &node.matrix {
        if matrix.is_empty() {
            errors.push(SpecError::new(
                format!("{at}.matrix"),
                "required",
                "a matrix needs a key",
            ));
        }
        let mut product: usize = 1;
        for (k, items) in matrix {
            check_items(items, &format!("{at}.matrix.{k}"), errors);
            if let Items::List(l) = items {
                product = product.saturating_mul(l.len());
            }
        }
        if product > MAX_ITEMS {
            errors.push(SpecError::new(
                format!("{at}.matrix"),
                "limit",
                format!("{product} combinations; the limit is {MAX_ITEMS}"),
            ));
        }
    }
    if node.parallelism == Some(0) {
        errors.push(SpecError::new(
            format!("{at}.parallelism"),
            "limit",
            "at least 1",
        ));
    }
    if let Some(r) = &node.retry {
        check_retry(r, &format!("{at}.retry"), errors);
    }
}

fn check_items(items: &Items, at: &str, errors: &mut Vec<SpecError>) {
    match items {
        Items::List(l) if l.is_empty() || l.len() > MAX_ITEMS => errors.push(SpecError::new(
            at,
            "limit",
            format!("{} items; a fan-out has 1 to {MAX_ITEMS}", l.len()),
        )),
        Items::From(text) if !text.trim().starts_with("${{") || !text.trim().ends_with("}}") => {
            errors.push(SpecError::new(
                at,
                "shape",
                "a list, or one ${{ … }} that gives a list (an input or an upstream output)",
            ));
        }
        _ => {}
    }
}

/// The node's condition, the names it refers to and the field they are in.
fn edges(
    node: &NodeSpec,
    at: &str,
    errors: &mut Vec<SpecError>,
) -> Option<(Option<Expr>, Vec<String>, &'static str)> {
    match (&node.depends, &node.dependencies) {
        (Some(_), Some(_)) => {
            errors.push(SpecError::new(
                format!("{at}.depends"),
                "depends_and_dependencies",
                "give depends or dependencies, not both",
            ));
            None
        }
        (Some(text), None) => match Expr::parse(text) {
            Ok(e) => {
                let names = e.nodes().into_iter().map(str::to_owned).collect();
                Some((Some(e), names, "depends"))
            }
            Err(e) => {
                errors.push(SpecError::new(
                    format!("{at}.depends"),
                    "expression",
                    e.to_string(),
                ));
                None
            }
        },
        (None, Some(list)) => Some((Expr::all_of(list), list.clone(), "dependencies")),
        (None, None) => Some((None, Vec::new(), "dependencies")),
    }
}

/// Node indexes in an order that puts each after what it waits on, or a
/// cycle as the nodes on it.
fn topological(spec: &WorkflowSpec, upstream: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        i: usize,
        upstream: &[Vec<usize>],
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> Result<(), Vec<usize>> {
        match marks[i] {
            Mark::Done => return Ok(()),
            Mark::Open => {
                let from = stack.iter().position(|&s| s == i).unwrap_or(0);
                return Err(stack[from..].to_vec());
            }
            Mark::New => {}
        }
        marks[i] = Mark::Open;
        stack.push(i);
        for &j in &upstream[i] {
            visit(j, upstream, marks, stack, order)?;
        }
        stack.pop();
        marks[i] = Mark::Done;
        order.push(i);
        Ok(())
    }
    let mut marks = vec![Mark::New; spec.nodes.len()];
    let mut order = Vec::with_capacity(spec.nodes.len());
    for i in 0..spec.nodes.len() {
        let mut stack = Vec::new();
        visit(i, upstream, &mut marks, &mut stack, &mut order).map_err(|mut cycle| {
            // Written in the direction work flows (upstream first), from
            // the node that comes first in the spec.
            cycle.reverse();
            let first = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, i)| **i)
                .map_or(0, |(k, _)| k);
            cycle.rotate_left(first);
            cycle
        })?;
    }
    Ok(order)
}

fn check_placeholders(
    spec: &WorkflowSpec,
    node: &NodeSpec,
    i: usize,
    index: &BTreeMap<&str, usize>,
    ancestors: &BTreeSet<usize>,
    errors: &mut Vec<SpecError>,
) {
    let at = format!("$.nodes[{i}]");
    let mut texts: Vec<(String, Value)> = Vec::new();
    if let Some(task) = &node.task {
        texts.push((format!("{at}.task.payload"), task.payload.clone()));
    }
    if let Some(Items::From(t)) = &node.with_items {
        texts.push((format!("{at}.with_items"), Value::String(t.clone())));
    }
    for (k, items) in node.matrix.iter().flatten() {
        if let Items::From(t) = items {
            texts.push((format!("{at}.matrix.{k}"), Value::String(t.clone())));
        }
    }
    if let Some(c) = &node.concurrency {
        texts.push((
            format!("{at}.concurrency.group"),
            Value::String(c.group.clone()),
        ));
    }
    for (base, value) in texts {
        let found = match template::refs(&value, &base) {
            Ok(found) => found,
            Err((path, message)) => {
                errors.push(SpecError::new(path, "placeholder", message));
                continue;
            }
        };
        let in_items = base.ends_with("with_items") || base.contains(".matrix.");
        // A group is named before the unit runs: inputs and run.id only.
        let in_group = base.ends_with("concurrency.group");
        for (path, r) in found {
            let refuse = |code: &str, message: String| SpecError::new(path.clone(), code, message);
            match r {
                Ref::Input(name, _) if !spec.inputs.contains_key(&name) => errors.push(refuse(
                    "undefined",
                    format!("the workflow has no input {name:?}; its inputs are {}", names(spec.inputs.keys())),
                )),
                Ref::Item(_) | Ref::Matrix(_) | Ref::Output(..) if in_group => errors.push(refuse(
                    "undefined",
                    "a concurrency group may name inputs and run.id only".into(),
                )),
                Ref::Item(_) if node.with_items.is_none() || in_items => errors.push(refuse(
                    "undefined",
                    "`item` is only known in the task of a with_items fan-out".into(),
                )),
                Ref::Matrix(key)
                    if in_items
                        || !node.matrix.as_ref().is_some_and(|m| m.contains_key(&key)) =>
                {
                    errors.push(refuse(
                        "undefined",
                        format!("the node's matrix has no key {key:?}"),
                    ));
                }
                Ref::Output(name, _) => match index.get(name.as_str()) {
                    None => errors.push(refuse(
                        "undefined",
                        format!("{name:?} is not a node of this workflow"),
                    )),
                    Some(j) if !ancestors.contains(j) => errors.push(refuse(
                        "not_upstream",
                        format!(
                            "{name:?} is not upstream of {:?}: its output may not exist when this node starts; add it to depends or dependencies",
                            node.name
                        ),
                    )),
                    Some(_) => {}
                },
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests;
