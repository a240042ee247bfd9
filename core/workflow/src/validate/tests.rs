use super::*;

const KINDS: Kinds<'static> = Kinds(&["chat", "tool"]);

fn spec(nodes: &str) -> WorkflowSpec {
    WorkflowSpec::from_yaml(&format!(
        "api_version: oshal.dev/workflow/v1\nname: t\ninputs:\n  branch: {{ default: main }}\n  targets: {{}}\ndefaults:\n  timeouts: {{ start_to_close: 1m }}\nnodes:\n{nodes}"
    ))
    .unwrap()
}

fn refusals(nodes: &str) -> Vec<(String, String)> {
    Workflow::new(spec(nodes), &KINDS)
        .map(|_| Vec::new())
        .unwrap_or_else(|e| e.into_iter().map(|e| (e.path, e.code)).collect())
}

fn refused(nodes: &str, path: &str, code: &str) -> SpecError {
    let errors = Workflow::new(spec(nodes), &KINDS).expect_err("refused");
    errors
        .iter()
        .find(|e| e.path == path && e.code == code)
        .cloned()
        .unwrap_or_else(|| panic!("no {code} at {path}: {errors:?}"))
}

const TASK: &str = "task: { kind: chat, payload: { prompt: hi } }";

#[test]
fn a_good_spec_gives_its_dag_in_order() {
    let w = Workflow::new(
        spec(&format!(
            "  - {{ name: d, depends: 'b.Succeeded || c.Failed', {TASK} }}\n  - {{ name: b, dependencies: [a], {TASK} }}\n  - {{ name: c, dependencies: [a], {TASK} }}\n  - {{ name: a, {TASK} }}\n"
        )),
        &KINDS,
    )
    .unwrap();
    let pos = |n: &str| {
        w.order
            .iter()
            .position(|&i| w.spec.nodes[i].name == n)
            .unwrap()
    };
    assert!(pos("a") < pos("b") && pos("b") < pos("d") && pos("c") < pos("d"));
    assert_eq!(w.upstream[0], vec![1, 2]);
    assert_eq!(w.descendants(3), [0, 1, 2].into_iter().collect());
    assert_eq!(w.condition[1].as_ref().unwrap().to_string(), "a");
}

#[test]
fn a_cycle_is_refused_with_its_path() {
    let e = refused(
        &format!(
            "  - {{ name: a, dependencies: [c], {TASK} }}\n  - {{ name: b, dependencies: [a], {TASK} }}\n  - {{ name: c, depends: b.Succeeded, {TASK} }}\n"
        ),
        "$.nodes[0].dependencies",
        "cycle",
    );
    assert_eq!(e.message, "a cycle: a → b → c → a");
    let e = refused(
        &format!("  - {{ name: a, dependencies: [a], {TASK} }}\n"),
        "$.nodes[0].dependencies",
        "cycle",
    );
    assert!(e.message.contains("depends on itself"));
}

#[test]
fn each_fault_is_named_by_its_path() {
    let cases: Vec<(String, &str, &str)> = vec![
        (format!("  - {{ name: a, dependencies: [nope], {TASK} }}\n"), "$.nodes[0].dependencies", "undefined"),
        (format!("  - {{ name: a, {TASK} }}\n  - {{ name: b, depends: a, dependencies: [a], {TASK} }}\n"), "$.nodes[1].depends", "depends_and_dependencies"),
        (format!("  - {{ name: a, {TASK} }}\n  - {{ name: b, depends: a.Finished, {TASK} }}\n"), "$.nodes[1].depends", "expression"),
        ("  - { name: a, task: { kind: email } }\n".into(), "$.nodes[0].task.kind", "unknown_kind"),
        (format!("  - {{ name: a, {TASK} }}\n  - {{ name: a, {TASK} }}\n"), "$.nodes[1].name", "duplicate"),
        (format!("  - {{ name: Bad, {TASK} }}\n"), "$.nodes[0].name", "name"),
        ("  - { name: a }\n".into(), "$.nodes[0]", "shape"),
        ("  - { name: a, approval: { approvers: [], timeout: 1h } }\n".into(), "$.nodes[0].approval.approvers", "required"),
        ("  - { name: a, approval: { approvers: [ops], timeout: 1h, escalation: { after: 2h, to: [lead] } } }\n".into(), "$.nodes[0].approval.escalation.after", "limit"),
        (format!("  - {{ name: a, with_items: [], {TASK} }}\n"), "$.nodes[0].with_items", "limit"),
        (format!("  - {{ name: a, with_items: nope, {TASK} }}\n"), "$.nodes[0].with_items", "shape"),
        (format!("  - {{ name: a, with_items: [1], matrix: {{ os: [x] }}, {TASK} }}\n"), "$.nodes[0].with_items", "shape"),
        (format!("  - {{ name: a, retry: {{ maximum_attempts: 0 }}, {TASK} }}\n"), "$.nodes[0].retry.maximum_attempts", "limit"),
        (format!("  - {{ name: a, retry: {{ maximum_attempts: 2, backoff_coefficient: 0.5 }}, {TASK} }}\n"), "$.nodes[0].retry.backoff_coefficient", "limit"),
        ("  - { name: a, task: { kind: chat, payload: { prompt: '${{ inputs.nope }}' } } }\n".into(), "$.nodes[0].task.payload.prompt", "undefined"),
        ("  - { name: a, task: { kind: chat, payload: { prompt: '${{ item }}' } } }\n".into(), "$.nodes[0].task.payload.prompt", "undefined"),
        ("  - { name: a, matrix: { os: [x] }, task: { kind: chat, payload: { prompt: '${{ matrix.arch }}' } } }\n".into(), "$.nodes[0].task.payload.prompt", "undefined"),
        (format!("  - {{ name: a, {TASK} }}\n  - {{ name: b, task: {{ kind: chat, payload: {{ prompt: '${{{{ nodes.a.output.text }}}}' }} }} }}\n"), "$.nodes[1].task.payload.prompt", "not_upstream"),
        ("  - { name: a, task: { kind: chat, payload: { prompt: '${{ nodes.a' } } }\n".into(), "$.nodes[0].task.payload.prompt", "placeholder"),
        (format!("  - {{ name: a, parallelism: 0, with_items: [1], {TASK} }}\n"), "$.nodes[0].parallelism", "limit"),
        (format!("  - {{ name: a, {TASK} }}\n  - {{ name: b, concurrency: {{ group: '${{{{ nodes.a.output }}}}' }}, dependencies: [a], {TASK} }}\n"), "$.nodes[1].concurrency.group", "undefined"),
        ("  - { name: a, concurrency: { group: g }, approval: { approvers: [ops], timeout: 1h } }\n".into(), "$.nodes[0].concurrency", "shape"),
    ];
    for (nodes, path, code) in cases {
        let got = refusals(&nodes);
        assert!(
            got.contains(&(path.to_owned(), code.to_owned())),
            "{nodes}: wanted {code} at {path}, got {got:?}"
        );
    }
}

#[test]
fn a_task_without_a_start_to_close_timeout_is_refused() {
    let s = WorkflowSpec::from_yaml(&format!(
        "api_version: oshal.dev/workflow/v1\nname: t\nnodes:\n  - {{ name: a, {TASK} }}\n  - {{ name: b, approval: {{ approvers: [ops], timeout: 1h }} }}\n"
    ))
    .unwrap();
    let e = Workflow::new(s, &KINDS).unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].path, "$.nodes[0].timeouts.start_to_close");
    assert_eq!(e[0].code, "timeout_required");
}

#[test]
fn a_run_gives_each_input_or_takes_its_default() {
    let w = Workflow::new(spec(&format!("  - {{ name: a, {TASK} }}\n")), &KINDS).unwrap();
    let given = serde_json::json!({"targets": ["x"]});
    let inputs = w.inputs(given.as_object().unwrap()).unwrap();
    assert_eq!(inputs["branch"], "main");
    let e = w.inputs(&Map::new()).unwrap_err();
    assert_eq!(
        (e.path.as_str(), e.code.as_str()),
        ("$.inputs.targets", "required")
    );
    let e = w
        .inputs(
            serde_json::json!({"targets": 1, "x": 2})
                .as_object()
                .unwrap(),
        )
        .unwrap_err();
    assert_eq!(
        (e.path.as_str(), e.code.as_str()),
        ("$.inputs.x", "undefined")
    );
}
