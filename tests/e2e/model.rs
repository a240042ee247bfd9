//! Models over the wire: the OpenAI-compatible provider against a real
//! llama-server (SmolLM2-135M), and against servers that misbehave.

use oshal_core::model::openai::{OpenAiCompatible, OpenAiConfig};
use oshal_core::model::{ChatMessage, ChatRequest, Model};
use oshal_core::ticket::ModelId;
use oshal_e2e::{LlamaServer, Server};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn ask(prompt: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage {
            role: "user".into(),
            content: prompt.into(),
        }],
        max_tokens: Some(max_tokens),
        response_schema: None,
    }
}

#[tokio::test]
async fn the_provider_talks_to_a_real_llama_server_plain_and_streamed() {
    let llama = LlamaServer::start().await.unwrap();
    for stream in [false, true] {
        let mut config = OpenAiConfig::new(
            &llama.base_url,
            LlamaServer::MODEL,
            ModelId::parse(LlamaServer::MODEL).unwrap(),
        );
        config.stream = stream;
        let model = OpenAiCompatible::new(config, None).unwrap();
        let reply = model
            .chat(&ask("Name one colour of the sky.", 16))
            .await
            .unwrap();
        assert!(
            !reply.text.trim().is_empty(),
            "stream={stream}: empty reply"
        );
        assert!(
            reply.usage.input_tokens > 5,
            "stream={stream}: {:?}",
            reply.usage
        );
        assert!(
            (1..=16).contains(&reply.usage.output_tokens),
            "stream={stream}: {:?}",
            reply.usage
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oshal_serve_runs_tickets_on_the_real_model_and_prices_its_usage() {
    let llama = LlamaServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[&["--bots", "2", "--model-stream"][..], &llama.model_flags()].concat(),
    )
    .unwrap();
    let r = server
        .post("/api/v1/tickets")
        .json(&json!({"kind": "chat", "payload": {"prompt": "Say hello in French.", "max_tokens": 12}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = server.wait_terminal(&id).await.unwrap();
    assert_eq!(v["state"], "succeeded", "{v:#}");
    let usage = &v["result"]["usage"];
    let row = &v["ledger"][0];
    assert_eq!(row["model"], LlamaServer::MODEL);
    assert_eq!(row["input_tokens"], usage["input_tokens"]);
    assert_eq!(row["output_tokens"], usage["output_tokens"]);
    assert!(row["output_tokens"].as_u64().unwrap() <= 12);
    // $0.05/M in, $0.20/M out, in nano-dollars, rounded half up per direction.
    let expect = (row["input_tokens"].as_i64().unwrap() * 50_000 + 500) / 1000
        + (row["output_tokens"].as_i64().unwrap() * 200_000 + 500) / 1000;
    assert_eq!(row["cost_nusd"].as_i64().unwrap(), expect);
}

/// A server that answers every request with `reply` (or never, if `None`).
async fn misbehaving_server(reply: Option<&'static str>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            match reply {
                None => held.push(sock), // accept and say nothing, forever
                Some(body) => {
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        let _ = sock.read(&mut buf).await;
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = sock.write_all(resp.as_bytes()).await;
                    });
                }
            }
        }
    });
    format!("http://{addr}/v1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_or_silence_from_a_model_ends_in_a_clear_error_never_stuck() {
    for (name, reply, timeout, expect) in [
        (
            "garbage",
            Some("<html>definitely not json</html>"),
            "5",
            "malformed model reply",
        ),
        (
            "no usage",
            Some(r#"{"choices":[{"message":{"content":"hi"}}]}"#),
            "5",
            "no usage",
        ),
        ("hang", None, "1", "timed out"),
    ] {
        let url = misbehaving_server(reply).await;
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(
            dir.path(),
            &[
                "--bots",
                "1",
                "--model-url",
                &url,
                "--model-name",
                "x",
                "--model-price-id",
                "builtin",
                "--model-timeout-s",
                timeout,
            ],
        )
        .unwrap();
        let id = server.submit("hello?").await.unwrap();
        let v = server.wait_terminal(&id).await.unwrap();
        assert_eq!(v["state"], "dead", "{name}: {v:#}");
        assert_eq!(v["attempts"], 3, "{name}: retried up to the limit");
        assert!(
            v["error"].as_str().unwrap().contains(expect),
            "{name}: {v:#}"
        );
        assert_eq!(
            v["ledger"].as_array().unwrap().len(),
            0,
            "{name}: nothing charged without usage"
        );
        let fails = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["to"] == "failed")
            .count();
        assert_eq!(fails, 3, "{name}");
    }
}

/// The workflow generator on the real small model (SmolLM2-135M through
/// llama-server): its reply is constrained to the spec's JSON Schema, so
/// it is parsable JSON whatever the model makes of the request (unless the
/// model runs out of tokens first, which the preview says as `truncated`,
/// from the reply's `finish_reason`); it comes
/// back checked (valid, or refused at a path), as a preview: nothing is
/// published until a person publishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generator_gets_a_parsable_spec_from_the_real_small_model_and_publishes_nothing() {
    let llama = LlamaServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[&["--bots", "1"][..], &llama.model_flags()].concat(),
    )
    .unwrap();
    let r = server
        .post("/api/v1/workflows/generate")
        .json(&json!({"request": "Summarize a support email, then have the operator approve the summary, then send a reply."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let g: serde_json::Value = r.json().await.unwrap();
    // The ask was a ticket like any: priced in the ledger.
    let ticket = server
        .get(&format!(
            "/api/v1/tickets/{}",
            g["ticket"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(ticket["state"], "succeeded", "{ticket:#}");
    assert_eq!(ticket["ledger"][0]["model"], LlamaServer::MODEL);
    let validation = &g["validation"];
    if ticket["result"]["cut"] == true {
        // A small model may loop inside the schema until its token limit:
        // the preview says the room ran out, not that the JSON is bad.
        assert!(g["spec"].is_null(), "{g:#}");
        assert_eq!(validation["errors"][0]["code"], "truncated", "{g:#}");
        assert_eq!(validation["errors"][0]["path"], "$", "{g:#}");
    } else {
        assert!(
            g["spec"].is_object(),
            "a whole reply constrained to the schema is JSON: {g:#}"
        );
        assert_eq!(g["spec"]["api_version"], "oshal.dev/workflow/v1", "{g:#}");
        if validation["valid"] == true {
            assert!(!validation["nodes"].as_array().unwrap().is_empty());
        } else {
            for e in validation["errors"].as_array().unwrap() {
                assert!(e["path"].as_str().unwrap().starts_with('$'), "{e}");
            }
        }
    }
    // A preview only: no definition was published.
    let defs: serde_json::Value = server
        .get("/api/v1/workflows/definitions")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(defs, json!([]));
}

/// A reply that stops at the model's token limit (`finish_reason: length`)
/// is kept as it came, marked `cut` on its ticket, and the generator's
/// preview refuses it as `truncated` at `$` rather than as bad JSON. A
/// signal whose explanation was cut is marked alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_cut_at_the_token_limit_is_marked_and_previewed_as_truncated() {
    let url = misbehaving_server(Some(
        r#"{"choices":[{"message":{"content":"{\"api_version\": \"oshal.dev/workflow/v1\", \"name\": \"mail\", \"nodes\": [{\"name\": \"sum"},"finish_reason":"length"}],"usage":{"prompt_tokens":700,"completion_tokens":24}}"#,
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--bots",
            "1",
            "--model-url",
            &url,
            "--model-name",
            "x",
            "--model-price-id",
            "builtin",
        ],
    )
    .unwrap();
    let g: serde_json::Value = server
        .post("/api/v1/workflows/generate")
        .json(&json!({"request": "Summarize a support email."}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(g["spec"].is_null(), "{g:#}");
    assert_eq!(g["validation"]["errors"][0]["code"], "truncated", "{g:#}");
    assert_eq!(g["validation"]["errors"][0]["path"], "$", "{g:#}");
    assert!(g["reply"].as_str().unwrap().ends_with("\"sum"), "{g:#}");
    let ticket: serde_json::Value = server
        .get(&format!(
            "/api/v1/tickets/{}",
            g["ticket"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ticket["state"], "succeeded", "{ticket:#}");
    assert_eq!(ticket["result"]["cut"], true, "{ticket:#}");
    assert_eq!(ticket["ledger"].as_array().unwrap().len(), 1, "priced once");
    // A signal's explanation cut at its limit is marked too; the insight
    // itself is whole (computed, not written by the model).
    let r = server
        .post("/api/v1/tickets")
        .json(&json!({"kind": "signal", "payload": {
            "strategy": {"name": "ema_cross", "fast": 5, "slow": 20},
            "instrument": "ETHUSD.SIM", "seed": 7, "bar_seconds": 60, "bars": 120
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let signal = server.wait_terminal(&id).await.unwrap();
    assert_eq!(signal["state"], "succeeded", "{signal:#}");
    assert_eq!(signal["result"]["cut"], true, "{signal:#}");
    let text: serde_json::Value =
        serde_json::from_str(signal["result"]["text"].as_str().unwrap()).unwrap();
    assert!(text["insight"]["direction"].is_string(), "{text:#}");
}
