//! Servers of a test's own: a Redis it can crash and restart empty, a
//! PostgreSQL cluster it can stop, each on this host or on a host of a
//! tailnet (`tailnet`).

use anyhow::{Context, Result, bail};
use std::process::{Child, Command, Stdio};

use super::{WAIT, free_port, kill_now, tailnet};

/// A Redis server of a test's own, on a free port, keeping nothing on disk
/// (as the fleet's Redis does): [`PrivateRedis::restart_empty`] is a Redis
/// crash as the controller sees one.
pub struct PrivateRedis {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    /// Where it runs: this host's loopback, or a tailnet host (its
    /// namespace, the address the test reaches it at).
    on: Option<(Command, String)>,
}

impl PrivateRedis {
    pub async fn start() -> Result<PrivateRedis> {
        let mut r = PrivateRedis {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir()?,
            on: None,
        };
        r.launch().await?;
        Ok(r)
    }

    /// On host `k` of a tailnet, listening on every address it has.
    pub async fn start_on(net: &tailnet::Tailnet, k: u8) -> Result<PrivateRedis> {
        let mut r = PrivateRedis {
            child: None,
            port: 6379,
            dir: tempfile::tempdir()?,
            on: Some((net.command(k, "redis-server"), net.underlay(k))),
        };
        r.launch().await?;
        Ok(r)
    }

    pub fn url(&self) -> String {
        let host = self.on.as_ref().map_or("127.0.0.1", |(_, h)| h.as_str());
        format!("redis://{host}:{}/", self.port)
    }

    async fn launch(&mut self) -> Result<()> {
        let (mut cmd, bind) = match &self.on {
            None => (Command::new("redis-server"), "127.0.0.1"),
            Some((c, _)) => {
                let mut cmd = Command::new(c.get_program());
                cmd.args(c.get_args());
                (cmd, "0.0.0.0")
            }
        };
        let child = cmd
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                bind,
                "--protected-mode",
                "no",
            ])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        self.child = Some(child);
        oshal_core::lane::redis::wait_until_answering(&self.url(), WAIT).await?;
        Ok(())
    }

    /// `kill -9`: the server is gone until `restart_empty`.
    pub fn kill(&mut self) {
        kill_now(self.child.take());
    }

    /// `kill -9`, then a fresh server on the same port with nothing in it.
    pub async fn restart_empty(&mut self) -> Result<()> {
        kill_now(self.child.take());
        self.launch().await
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        kill_now(self.child.take());
    }
}

/// A PostgreSQL cluster of a test's own (Debian's binaries, trust auth on
/// loopback, a free port), so a test may stop and restart it.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    port: u16,
    running: bool,
    /// On a tailnet host: its namespace and the underlay address it also
    /// listens on (trusted from the underlay's /24).
    on: Option<(String, String)>,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Whether this process runs as root (asked once).
fn running_as_root() -> bool {
    static ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOT.get_or_init(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout == b"0\n")
    })
}

impl PrivatePostgres {
    pub async fn start() -> Result<PrivatePostgres> {
        Self::start_in(None).await
    }

    /// On host `k` of a tailnet, reachable from the test at its underlay
    /// address.
    pub async fn start_on(net: &tailnet::Tailnet, k: u8) -> Result<PrivatePostgres> {
        Self::start_in(Some((net.namespace(k), net.underlay(k)))).await
    }

    async fn start_in(on: Option<(String, String)>) -> Result<PrivatePostgres> {
        let dir = tempfile::tempdir()?;
        // initdb refuses to run as root: the cluster belongs to `postgres`.
        if running_as_root() {
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()?;
        }
        let mut pg = PrivatePostgres {
            dir,
            port: free_port(),
            running: false,
            on,
        };
        pg.run(
            "initdb",
            &["-A", "trust", "-U", "postgres", "-N", "-D", &pg.data()],
        )?;
        if let Some((_, addr)) = &pg.on {
            let net = addr.rsplit_once('.').map_or(addr.as_str(), |(n, _)| n);
            let hba = pg.dir.path().join("data/pg_hba.conf");
            let mut text = std::fs::read_to_string(&hba)?;
            text.push_str(&format!("host all all {net}.0/24 trust\n"));
            std::fs::write(&hba, text)?;
        }
        pg.start_again()?;
        Ok(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<()> {
        let program = format!("{PG_BIN}/{tool}");
        let mut cmd = match (&self.on, running_as_root()) {
            (Some((ns, _)), _) => {
                let mut c = Command::new("ip");
                c.args([
                    "netns", "exec", ns, "runuser", "-u", "postgres", "--", &program,
                ]);
                c
            }
            (None, true) => {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--", &program]);
                c
            }
            (None, false) => Command::new(&program),
        };
        let out = cmd
            .args(args)
            .output()
            .with_context(|| format!("running {tool}"))?;
        if !out.status.success() {
            bail!("{tool} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    pub fn admin_url(&self) -> String {
        let host = self.on.as_ref().map_or("127.0.0.1", |(_, a)| a.as_str());
        format!("postgres://postgres@{host}:{}/postgres", self.port)
    }

    /// Starts the (stopped) cluster and waits until it accepts connections.
    pub fn start_again(&mut self) -> Result<()> {
        let listen = match &self.on {
            Some((_, addr)) => format!("127.0.0.1,{addr}"),
            None => "127.0.0.1".to_owned(),
        };
        let opts = format!(
            "-p {} -c listen_addresses={listen} -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"],
        )?;
        self.running = true;
        Ok(())
    }

    /// Stops it at once, as a crash would (`-m immediate`).
    pub fn crash(&mut self) -> Result<()> {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        )?;
        self.running = false;
        Ok(())
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self.crash();
        }
    }
}
