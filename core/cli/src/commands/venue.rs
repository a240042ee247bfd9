//! `oshal venue`: a paper venue in a process of its own (`oshal_venue`).
//!
//! `init` prepares its data directory for the URL it will be reached at: a
//! new API key, printed once and kept only as its SHA-256, and the
//! `venue-paper` connector manifest for that URL, signed with a new
//! publisher key whose public half is written beside it and whose private
//! half is never kept (another `init` signs again with another key). The
//! operator trusts the publisher (`oshal serve --trust-publishers`), loads
//! the manifest (`--connectors-dir`) and files the key with the broker
//! (`oshal connectors credential venue-paper`; `key` issues another key
//! for that, or to rotate one). `serve` runs it.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use oshal_core::clock::{Clock, SystemClock};
use oshal_core::connector::manifest::Manifest;
use oshal_core::connector::signing;
use oshal_venue::manifest::{CONNECTOR, manifest};
use oshal_venue::{PaperVenue, VenueStore};

use crate::shutdown::cancel_on_signal;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Subcommand)]
pub enum Action {
    /// Prepare a data directory: an API key (printed once, kept only as
    /// its hash) and the connector manifest for --url, signed with a new
    /// publisher key (in <data-dir>/connector, with publishers.json).
    Init {
        #[arg(long)]
        data_dir: PathBuf,
        /// Where the venue will be reached: `http://127.0.0.1:7412`
        /// (plain http only on loopback).
        #[arg(long)]
        url: String,
    },
    /// Issue another API key (printed once as `{"api_key": …}`, kept only
    /// as its hash): for the broker, or to rotate one.
    Key {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Run the venue.
    Serve {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:7412")]
        listen: SocketAddr,
        /// Ticks of depth beyond the quote on each side of the book (the
        /// paper desk's in-process venue shows 3).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=1000))]
        depth_levels: u32,
    },
}

pub async fn run(args: Args) -> Result<()> {
    match args.action {
        Action::Init { data_dir, url } => init(data_dir, &url).await,
        Action::Key { data_dir } => {
            let api_key = new_key(&data_dir).await?;
            println!("{}", serde_json::json!({ "api_key": api_key }));
            Ok(())
        }
        Action::Serve {
            data_dir,
            listen,
            depth_levels,
        } => serve(data_dir, listen, depth_levels).await,
    }
}

async fn init(data_dir: PathBuf, url: &str) -> Result<()> {
    let unsigned = manifest(url);
    Manifest::from_json(unsigned.clone()).with_context(|| format!("--url {url}"))?;
    let api_key = new_key(&data_dir).await?;

    let key = signing::generate_key();
    let public = signing::public_key_b64(&key);
    let key_id = format!("{CONNECTOR}-{}", &key_name(&public));
    let envelope = signing::sign(&unsigned, &key_id, &key);
    drop(key);
    let dir = data_dir.join("connector");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let manifest_path = dir.join(format!("{CONNECTOR}.json"));
    let publishers_path = dir.join("publishers.json");
    std::fs::write(&manifest_path, serde_json::to_string_pretty(&envelope)?)
        .with_context(|| format!("writing {}", manifest_path.display()))?;
    let publishers = serde_json::json!({"keys": [{"id": key_id, "ed25519": public}]});
    std::fs::write(&publishers_path, serde_json::to_string_pretty(&publishers)?)
        .with_context(|| format!("writing {}", publishers_path.display()))?;
    let out = serde_json::json!({
        "api_key": api_key,
        "connector": CONNECTOR,
        "base_url": unsigned["base_url"],
        "connectors_dir": dir,
        "publishers": publishers_path,
        "publisher_key_id": key_id,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// A new API key the venue in `data_dir` accepts from now on.
async fn new_key(data_dir: &std::path::Path) -> Result<String> {
    let store = VenueStore::open(data_dir)
        .await
        .with_context(|| format!("--data-dir {}", data_dir.display()))?;
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).context("no randomness for an API key")?;
    let api_key: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    store.add_key(&api_key, SystemClock.now_ms()).await?;
    store.close().await;
    Ok(api_key)
}

/// A short, stable name for a publisher key: its first 12 base64 letters
/// and digits.
fn key_name(public_b64: &str) -> String {
    public_b64
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect::<String>()
        .to_ascii_lowercase()
}

async fn serve(data_dir: PathBuf, listen: SocketAddr, depth_levels: u32) -> Result<()> {
    let store = VenueStore::open(&data_dir)
        .await
        .with_context(|| format!("--data-dir {}", data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let shutdown = cancel_on_signal();
    eprintln!(
        "oshal venue: paper venue, {depth_levels} levels of depth, data in {}",
        data_dir.display()
    );
    println!("listening on http://{addr}");
    oshal_venue::serve(
        listener,
        PaperVenue::new(store.clone(), depth_levels),
        shutdown,
    )
    .await?;
    store.close().await;
    Ok(())
}
