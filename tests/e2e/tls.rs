//! The TLS edge through the real binary: `oshal serve --tls-cert --tls-key`
//! with a certificate a test CA issued; the CLI trusts it by that CA or by
//! the certificate's pinned SHA-256 and refuses it otherwise, naming why; a
//! renewed certificate is served without a restart; a key that is not the
//! certificate's stops `serve` with both files named; the Security Center's
//! probes pass on the TLS listener, off loopback too.

use oshal_e2e::{Server, oshal_bin};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A test CA that issues server certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Oshal test CA");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    /// A certificate for `names` and its key, written to `cert` and `key`;
    /// its SHA-256 as `oshal serve` prints it.
    fn issue(&self, names: &[&str], cert: &Path, key: &Path) -> String {
        let pair = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        let c = params.signed_by(&pair, &self.issuer).unwrap();
        // The key first: a reload that sees the new key with the old
        // certificate refuses the pair and waits for the certificate.
        std::fs::write(key, pair.serialize_pem()).unwrap();
        std::fs::write(cert, c.pem()).unwrap();
        oshal_core::tls::fingerprint(c.der())
    }
}

/// `oshal ARGS…` against `server`; (exit code, stdout, stderr).
fn cli(server: &Server, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(oshal_bin())
        .args(args)
        .env("OSHAL_API", &server.url)
        .env("OSHAL_API_TOKEN", &server.token)
        .env_remove("OSHAL_CA_FILE")
        .env_remove("OSHAL_PIN_SHA256")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_served_over_tls_trusted_by_its_ca_or_its_pin_and_renewed_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca_file) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("ca.pem"),
    );
    let ca = Ca::new();
    std::fs::write(&ca_file, ca.issuer.pem()).unwrap();
    let first = ca.issue(&["127.0.0.1", "localhost"], &cert, &key);
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    )
    .unwrap();
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let ca_arg = ca_file.to_str().unwrap();

    // Trusted by its CA: a ticket runs.
    let (code, out, err) = cli(
        &server,
        &["submit", "over tls", "--wait", "--ca-file", ca_arg],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["state"],
        "succeeded"
    );
    // Trusted by its pin.
    let (code, _, err) = cli(&server, &["tickets", "--pin-sha256", &first]);
    assert_eq!(code, 0, "{err}");
    // The topology's edge: TLS, the certificate in force, its names and
    // when it expires.
    let edge = |pin: &str| -> Value {
        let (code, out, err) = cli(&server, &["mesh", "--pin-sha256", pin, "status", "--json"]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<Value>(&out).unwrap()["edge"].clone()
    };
    let e = edge(&first);
    assert_eq!(e["tls"]["sha256"], first.as_str(), "{e:#}");
    assert_eq!(
        e["tls"]["names"],
        serde_json::json!(["127.0.0.1", "localhost"])
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let not_after = e["tls"]["not_after_ms"].as_i64().unwrap();
    assert!(not_after > now_ms + 86_400_000, "{e:#}");
    assert!(e["tls"]["not_before_ms"].as_i64().unwrap() < now_ms);
    assert_eq!(e["reload_refused"], Value::Null);
    // Not trusted by the system's roots, nor by another pin: refused, and
    // the reason says so.
    let (code, _, err) = cli(&server, &["tickets"]);
    assert_ne!(code, 0);
    assert!(err.contains("cannot reach the Oshal API"), "{err}");
    let wrong = "00".repeat(32);
    let (code, _, err) = cli(&server, &["tickets", "--pin-sha256", &wrong]);
    assert_ne!(code, 0);
    assert!(err.contains("is not the pinned one"), "{err}");
    let (code, _, err) = cli(&server, &["tickets", "--pin-sha256", "not-a-pin"]);
    assert_ne!(code, 0);
    assert!(err.contains("pin_sha256"), "{err}");
    // Plain HTTP to the TLS port gets nothing.
    let plain = server.url.replace("https://", "http://");
    assert!(
        reqwest::Client::new()
            .get(format!("{plain}/api/v1/health"))
            .send()
            .await
            .map(|r| !r.status().is_success())
            .unwrap_or(true),
        "plain HTTP must not be answered"
    );
    // The WebSocket, over wss, trusted by the pin.
    let client = oshal_core::api::client::Client::with_trust(
        &server.url,
        &server.token,
        &oshal_core::tls::Trust::pin(&first).unwrap(),
    )
    .unwrap();
    let events = client.events().await.unwrap();
    drop(events);

    // Renewed in place: the new certificate is served within seconds, and
    // the old pin no longer matches.
    let second = ca.issue(&["127.0.0.1", "localhost"], &cert, &key);
    assert_ne!(first, second);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, _, _) = cli(&server, &["tickets", "--pin-sha256", &second]);
        if code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, _, _) = cli(&server, &["tickets", "--pin-sha256", &first]);
    assert_ne!(code, 0, "the old certificate is gone");
    // A renewal that does not load keeps the one in force.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnope\n").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (code, _, err) = cli(&server, &["tickets", "--pin-sha256", &second]);
    assert_eq!(code, 0, "{err}");
    let e = edge(&second);
    assert_eq!(e["tls"]["sha256"], second.as_str(), "the renewal is drawn");
    assert!(
        e["reload_refused"]
            .as_str()
            .is_some_and(|why| why.contains("--tls-cert")),
        "the refused renewal is said: {e:#}"
    );

    // A certificate for another name is refused when the name is checked.
    let other = tempfile::tempdir().unwrap();
    let (c2, k2) = (other.path().join("c.pem"), other.path().join("k.pem"));
    ca.issue(&["oshal.example.net"], &c2, &k2);
    let named = Server::start(
        &other.path().join("data"),
        &[
            "--tls-cert",
            c2.to_str().unwrap(),
            "--tls-key",
            k2.to_str().unwrap(),
        ],
    )
    .unwrap();
    let (code, _, err) = cli(&named, &["tickets", "--ca-file", ca_arg]);
    assert_ne!(code, 0);
    assert!(err.to_lowercase().contains("not valid for name"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_is_not_the_certificates_stops_serve_naming_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    ca.issue(&["127.0.0.1"], &cert, &key);
    let (c2, k2) = (dir.path().join("c2.pem"), dir.path().join("k2.pem"));
    ca.issue(&["127.0.0.1"], &c2, &k2);
    let out = Command::new(oshal_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            k2.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--tls-key") && err.contains("--tls-cert"),
        "{err}"
    );
    assert!(err.contains("k2.pem") && err.contains("cert.pem"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_security_center_passes_a_tls_listener_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let (cert, key, ca_file) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("ca.pem"),
    );
    std::fs::write(&ca_file, ca.issuer.pem()).unwrap();
    ca.issue(&["127.0.0.1"], &cert, &key);
    let port = oshal_e2e::free_port();
    let listen = format!("0.0.0.0:{port}");
    let mut child = Command::new(oshal_bin())
        .args(["serve", "--listen", &listen, "--data-dir"])
        .arg(dir.path().join("data2"))
        .args([
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ])
        .args(["--security-scan-every-min", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let token_file = dir.path().join("data2/api-token");
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("https://127.0.0.1:{port}");
    let client = loop {
        if let Ok(token) = std::fs::read_to_string(&token_file) {
            let c = oshal_core::api::client::Client::with_trust(
                &url,
                token.trim(),
                &oshal_core::tls::Trust::ca_file(&ca_file).unwrap(),
            )
            .unwrap();
            if c.health().await.is_ok() {
                break c;
            }
        }
        assert!(
            Instant::now() < deadline,
            "serve did not come up on {listen}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    client.security_scan().await.unwrap();
    let controls = client.security_controls().await.unwrap();
    let controls = serde_json::to_value(&controls).unwrap();
    let text = controls.to_string();
    for check in ["surfaces.plaintext-remote", "surfaces.no-token"] {
        assert!(text.contains(check), "{check} missing: {controls:#}");
    }
    let runs: Vec<&Value> = controls
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["checks"].as_array().unwrap())
        .filter(|c| {
            c["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("surfaces."))
        })
        .collect();
    assert!(!runs.is_empty(), "{controls:#}");
    for run in runs {
        assert_eq!(run["status"], "passed", "{run:#}");
    }
    let _ = child.kill();
    let _ = child.wait();
}
