//! A tailnet of test hosts on this machine: one network namespace per host,
//! joined underneath by a bridge (the "internet", 10.99.R.0/24, the test
//! process at .254) and on top by userspace WireGuard (`wireguard-go`, a
//! TUN device per host) on 100.64.R.0/24, every host a peer of every other.
//! What runs on a host runs in its namespace (`ip netns exec`), so it sees
//! only its loopback, its underlay and the tailnet; cutting a host's
//! underlay cuts its tunnels, as a lost link would.
//!
//! Needs root, `ip`, `wg`, `wireguard-go` and `/dev/net/tun` (`scripts/lib.sh`
//! `ensure_mesh_tools`). Everything is torn down on drop.

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::{Command, Stdio};

/// A tailnet of `n` hosts, numbered from 1.
pub struct Tailnet {
    id: String,
    r: u8,
    hosts: u8,
    _dir: tempfile::TempDir,
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> Result<String> {
    run(Command::new("ip").args(args))
}

impl Tailnet {
    pub fn start(hosts: u8) -> Result<Tailnet> {
        let dir = tempfile::tempdir()?;
        let raw = *uuid::Uuid::new_v4().as_bytes();
        // A /24 of the underlay no other tailnet of this machine uses.
        let routes = ip(&["route"])?;
        let r = (0..200u16)
            .map(|i| 1 + ((u16::from(raw[0]) + i) % 250) as u8)
            .find(|r| !routes.contains(&format!("10.99.{r}.")))
            .context("no free 10.99.R.0/24")?;
        let id = format!("{:02x}{:02x}", raw[1], raw[2]);
        let net = Tailnet {
            id,
            r,
            hosts,
            _dir: dir,
        };
        net.build().inspect_err(|_| net.teardown())?;
        Ok(net)
    }

    /// Host `k`'s network namespace.
    pub fn namespace(&self, k: u8) -> String {
        self.ns(k)
    }

    fn ns(&self, k: u8) -> String {
        format!("oshal-{}-{k}", self.id)
    }

    fn bridge(&self) -> String {
        format!("obr{}", self.id)
    }

    fn iface(&self, k: u8) -> String {
        format!("ow{}{k}", self.id)
    }

    /// Host `k`'s tailnet address (100.64.R.k).
    pub fn addr(&self, k: u8) -> String {
        format!("100.64.{}.{k}", self.r)
    }

    /// Host `k`'s underlay address (10.99.R.k), which the test process
    /// reaches through the bridge.
    pub fn underlay(&self, k: u8) -> String {
        format!("10.99.{}.{k}", self.r)
    }

    fn build(&self) -> Result<()> {
        let bridge = self.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("10.99.{}.254/24", self.r),
            "dev",
            &bridge,
        ])?;
        ip(&["link", "set", &bridge, "up"])?;
        let keys_dir = self._dir.path();
        let mut public = Vec::new();
        for k in 1..=self.hosts {
            let ns = self.ns(k);
            let veth = format!("ov{}{k}", self.id);
            ip(&["netns", "add", &ns])?;
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["link", "set", &veth, "master", &bridge, "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", self.underlay(k)),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            let key = run(Command::new("wg").arg("genkey"))?;
            let key_file = keys_dir.join(format!("key{k}"));
            std::fs::write(&key_file, key.trim())?;
            let mut pubkey = Command::new("wg")
                .arg("pubkey")
                .stdin(std::fs::File::open(&key_file)?)
                .output()?;
            pubkey.stdout.retain(|b| !b.is_ascii_whitespace());
            public.push(String::from_utf8(pubkey.stdout)?);
            let iface = self.iface(k);
            run(Command::new("ip")
                .args(["netns", "exec", &ns, "wireguard-go", &iface])
                .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1"))?;
            run(Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns,
                    "wg",
                    "set",
                    &iface,
                    "listen-port",
                    "51820",
                    "private-key",
                ])
                .arg(&key_file))?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", self.addr(k)),
                "dev",
                &iface,
            ])?;
            ip(&["-n", &ns, "link", "set", &iface, "up"])?;
        }
        for k in 1..=self.hosts {
            for j in (1..=self.hosts).filter(|j| *j != k) {
                run(Command::new("ip").args([
                    "netns",
                    "exec",
                    &self.ns(k),
                    "wg",
                    "set",
                    &self.iface(k),
                    "peer",
                    &public[usize::from(j) - 1],
                    "endpoint",
                    &format!("{}:51820", self.underlay(j)),
                    "allowed-ips",
                    &format!("{}/32", self.addr(j)),
                    "persistent-keepalive",
                    "1",
                ]))?;
            }
        }
        Ok(())
    }

    /// `program` to run on host `k`.
    pub fn command(&self, k: u8, program: impl AsRef<Path>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(k)]).arg(program.as_ref());
        c
    }

    /// Cuts host `k`'s link: its underlay goes down, and its tunnels with it.
    pub fn cut(&self, k: u8) -> Result<()> {
        ip(&["-n", &self.ns(k), "link", "set", "eth0", "down"]).map(drop)
    }

    /// Restores host `k`'s link.
    pub fn restore(&self, k: u8) -> Result<()> {
        ip(&["-n", &self.ns(k), "link", "set", "eth0", "up"]).map(drop)
    }

    /// `wg show` on host `k`: its peers, handshakes and transfer.
    pub fn wg_show(&self, k: u8) -> String {
        run(Command::new("ip").args(["netns", "exec", &self.ns(k), "wg", "show"]))
            .unwrap_or_default()
    }

    fn teardown(&self) {
        for k in 1..=self.hosts {
            let ns = self.ns(k);
            if let Ok(pids) = ip(&["netns", "pids", &ns]) {
                for pid in pids.split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = ip(&["netns", "del", &ns]);
            let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.iface(k)));
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}

impl Drop for Tailnet {
    fn drop(&mut self) {
        self.teardown();
    }
}
