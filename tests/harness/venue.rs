//! `oshal venue` as a test's own process: a paper venue on a loopback port
//! of its own, its data in a temp dir, killed and started again on the same
//! port (the signed connector names its URL).

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use super::{free_port, kill_now, oshal_bin, spawn_until};

pub struct VenueProcess {
    child: Option<Child>,
    data_dir: PathBuf,
    port: u16,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// What `oshal venue init` printed: `api_key`, `connectors_dir`,
    /// `publishers`, …
    pub init: Value,
}

impl VenueProcess {
    /// `oshal venue init` in `data_dir` for a free port; not started yet.
    pub fn init(data_dir: &Path) -> Result<VenueProcess> {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let out = Command::new(oshal_bin())
            .args(["venue", "init", "--url", &url, "--data-dir"])
            .arg(data_dir)
            .output()
            .context("running oshal venue init")?;
        if !out.status.success() {
            bail!("oshal venue init: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(VenueProcess {
            child: None,
            data_dir: data_dir.to_owned(),
            port,
            url,
            init: serde_json::from_slice(&out.stdout).context("oshal venue init's output")?,
        })
    }

    /// `oshal venue serve` on its port, until it is listening.
    pub fn start(&mut self) -> Result<()> {
        let mut cmd = Command::new(oshal_bin());
        cmd.args(["venue", "serve", "--listen"])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&self.data_dir);
        let (child, _, _) = spawn_until(cmd, "oshal venue", "listening on ", None)?;
        self.child = Some(child);
        Ok(())
    }

    /// `kill -9`: no goodbye.
    pub fn kill9(&mut self) {
        kill_now(self.child.take());
    }

    pub fn api_key(&self) -> &str {
        self.init["api_key"].as_str().unwrap_or_default()
    }

    /// The `--connectors-dir` and `--trust-publishers` arguments that load
    /// its signed connector into `oshal serve`.
    pub fn serve_args(&self) -> Vec<String> {
        let text = |k: &str| self.init[k].as_str().unwrap_or_default().to_owned();
        vec![
            "--connectors-dir".into(),
            text("connectors_dir"),
            "--trust-publishers".into(),
            text("publishers"),
        ]
    }
}

impl Drop for VenueProcess {
    fn drop(&mut self) {
        kill_now(self.child.take());
    }
}
