//! A container engine of a test's own: Podman (`podman system service`)
//! serving the Docker Engine API on a unix socket, over a storage root of
//! its own (the `vfs` driver, so it is removed with a plain delete), with
//! runc and cgroupfs as RECIPES.md found they must be here. Images come from
//! no registry: `busybox_image` imports one made of this machine's busybox
//! and the libraries it links.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Engine {
    pub socket: PathBuf,
    dir: tempfile::TempDir,
    service: Option<Child>,
}

impl Engine {
    pub fn start() -> Result<Engine> {
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join("containers.conf"),
            "[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\nruntime = \"runc\"\n",
        )?;
        let socket = dir.path().join("engine.sock");
        let mut engine = Engine {
            socket,
            dir,
            service: None,
        };
        let service = engine
            .podman()
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", engine.socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting podman system service (apt-get install podman)")?;
        engine.service = Some(service);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !engine.socket.exists() {
            if Instant::now() > deadline {
                bail!(
                    "podman system service did not listen on {}",
                    engine.socket.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(engine)
    }

    /// `podman` on this engine's storage.
    pub fn podman(&self) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", d.join("containers.conf"))
            .args(["--storage-driver", "vfs", "--root"])
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"));
        c
    }

    /// `podman ARGS…`, which must succeed; its stdout.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        let out = self.podman().args(args).output()?;
        if !out.status.success() {
            bail!("podman {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// A container `name` of `image` that sleeps, with these labels and a
    /// health check run once by hand (no systemd here to time it): healthy.
    pub fn run_healthy(&self, name: &str, image: &str, labels: &[&str]) -> Result<()> {
        let mut args = vec!["run", "-d", "--name", name, "--health-cmd", "true"];
        for l in labels {
            args.extend(["--label", l]);
        }
        args.extend([image, "sleep", "1000"]);
        self.run(&args)?;
        self.run(&["healthcheck", "run", name]).map(drop)
    }

    /// An image of this machine's busybox and the libraries it links, as
    /// `localhost/oshal-busybox:test`.
    pub fn busybox_image(&self) -> Result<String> {
        let root = self.dir.path().join("rootfs");
        std::fs::create_dir_all(root.join("bin"))?;
        std::fs::copy("/usr/bin/busybox", root.join("bin/busybox"))?;
        for tool in ["sh", "sleep", "true", "false"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(tool))?;
        }
        let ldd = Command::new("ldd").arg("/usr/bin/busybox").output()?;
        for lib in String::from_utf8_lossy(&ldd.stdout)
            .split_whitespace()
            .filter(|w| w.starts_with('/'))
        {
            let to = root.join(lib.trim_start_matches('/'));
            std::fs::create_dir_all(to.parent().context("a library has a directory")?)?;
            std::fs::copy(lib, &to)?;
        }
        let tar = self.dir.path().join("rootfs.tar");
        let ok = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()?
            .success();
        if !ok {
            bail!("tar of the busybox root failed");
        }
        let image = "localhost/oshal-busybox:test";
        self.run(&["import", tar.to_str().context("utf-8 path")?, image])?;
        Ok(image.to_owned())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.podman().args(["rm", "-f", "-a", "-t", "0"]).output();
        if let Some(mut c) = self.service.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
