//! Signed manifests: ed25519 over the manifest's canonical bytes.
//!
//! A curated connector travels as an envelope, `{"manifest": {…},
//! "signature": {"key_id": "…", "ed25519": "<base64>"}}`. It is accepted only
//! if `key_id` names a trusted publisher and the signature verifies over
//! [`canonical_bytes`] of the manifest exactly as it arrived, so a changed
//! byte anywhere (a path, a scope, the base URL) is refused. Trusted keys are
//! the shipped `assets/connectors/publishers.json` plus any the operator adds.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::manifest::{Manifest, ManifestError, canonical_bytes};

/// The publishers whose keys ship with Oshal.
pub const SHIPPED_PUBLISHERS: &str = include_str!("../../../assets/connectors/publishers.json");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureBlock {
    pub key_id: String,
    /// The 64-byte signature, base64.
    pub ed25519: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub manifest: serde_json::Value,
    pub signature: SignatureBlock,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublisherFile {
    keys: Vec<PublisherKey>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublisherKey {
    id: String,
    /// The 32-byte public key, base64.
    ed25519: String,
}

/// Publisher keys a signed manifest may be signed by.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys(BTreeMap<String, VerifyingKey>);

impl TrustedKeys {
    /// The keys shipped in `assets/connectors/publishers.json`.
    pub fn shipped() -> Self {
        Self::from_json(SHIPPED_PUBLISHERS).expect("the shipped publisher keys parse")
    }

    /// Reads a publishers file (`{"keys": [{"id", "ed25519"}]}`).
    pub fn from_json(text: &str) -> Result<Self, ManifestError> {
        let file: PublisherFile = serde_json::from_str(text).map_err(|e| ManifestError {
            field: "publishers".into(),
            reason: format!("not a publishers file ({e})"),
        })?;
        let mut keys = Self::default();
        for (i, k) in file.keys.into_iter().enumerate() {
            let key = decode_key(&k.ed25519).map_err(|reason| ManifestError {
                field: format!("keys[{i}].ed25519"),
                reason,
            })?;
            keys.0.insert(k.id, key);
        }
        Ok(keys)
    }

    pub fn insert(&mut self, id: impl Into<String>, key: VerifyingKey) {
        self.0.insert(id.into(), key);
    }

    pub fn contains(&self, key_id: &str) -> bool {
        self.0.contains_key(key_id)
    }

    pub fn extend(&mut self, other: TrustedKeys) {
        self.0.extend(other.0);
    }

    /// Verifies an envelope and validates its manifest; returns the manifest
    /// and the publisher that signed it.
    pub fn verify(&self, envelope: &Envelope) -> Result<(Manifest, String), ManifestError> {
        let sig = &envelope.signature;
        let key = self.0.get(&sig.key_id).ok_or_else(|| ManifestError {
            field: "signature.key_id".into(),
            reason: format!("{:?} is not a trusted publisher key", sig.key_id),
        })?;
        let bytes: [u8; 64] = B64
            .decode(&sig.ed25519)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| ManifestError {
                field: "signature.ed25519".into(),
                reason: "must be 64 bytes in base64".into(),
            })?;
        key.verify(&canonical_bytes(&envelope.manifest), &Signature::from_bytes(&bytes))
            .map_err(|_| ManifestError {
                field: "signature.ed25519".into(),
                reason: format!(
                    "does not verify under {:?}: the manifest was changed after signing or signed by another key",
                    sig.key_id
                ),
            })?;
        let manifest = Manifest::from_json(envelope.manifest.clone())?;
        Ok((manifest, sig.key_id.clone()))
    }
}

fn decode_key(b64: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = B64
        .decode(b64)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("must be 32 bytes in base64")?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("not an ed25519 public key ({e})"))
}

/// Signs `manifest` (a publisher's tool; tests use it with keys of their own).
pub fn sign(manifest: &serde_json::Value, key_id: &str, key: &SigningKey) -> Envelope {
    let sig = key.sign(&canonical_bytes(manifest));
    Envelope {
        manifest: manifest.clone(),
        signature: SignatureBlock {
            key_id: key_id.to_owned(),
            ed25519: B64.encode(sig.to_bytes()),
        },
    }
}

/// A fresh signing key from the OS's randomness.
pub fn generate_key() -> SigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the OS has randomness");
    SigningKey::from_bytes(&seed)
}

/// A key's public half in the publishers file's encoding.
pub fn public_key_b64(key: &SigningKey) -> String {
    B64.encode(key.verifying_key().to_bytes())
}

/// Reads a signing key: 32 bytes in base64 (what `oshal connector keygen` writes).
pub fn signing_key_from_b64(text: &str) -> Result<SigningKey, String> {
    let seed: [u8; 32] = B64
        .decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("a signing key is 32 bytes in base64")?;
    Ok(SigningKey::from_bytes(&seed))
}
