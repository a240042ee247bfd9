//! Fleets this window can attach to.
//!
//! A fleet is a name and a controller URL, kept in the app's settings
//! (`tauri-plugin-store`, `settings.json` under the app's data directory).
//! Its API token is kept in the OS keyring (Keychain, Credential Manager,
//! Secret Service), under the service [`KEYRING_SERVICE`] and the user
//! `fleet:<name>`, and nowhere else: not in the settings, not in the page,
//! not in a log. Input is checked here, so every refusal names its field and
//! its limit.

use oshal_core::api::http::ApiToken;
use oshal_core::api::{ApiError, ErrorKind};
use serde::{Deserialize, Serialize};
use specta::Type;

/// The keyring service the tokens are filed under.
pub const KEYRING_SERVICE: &str = "dev.oshal.desktop";
/// Longest fleet name, in characters.
pub const MAX_NAME: usize = 64;
/// Longest controller URL, in bytes.
pub const MAX_URL: usize = 2048;
/// Longest API token, in bytes.
pub const MAX_TOKEN: usize = 4096;
/// The name that means the embedded controller.
pub const LOCAL: &str = "local";

/// A remote controller, as listed in the settings (no secret here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct Fleet {
    pub name: String,
    pub url: String,
    /// The SHA-256 of the controller's own certificate (a self-signed
    /// one), trusted instead of the system's roots; not a secret.
    #[serde(default)]
    pub pin_sha256: Option<String>,
}

/// What the "Attach to fleet" form sends.
#[derive(Clone, Deserialize, Type)]
pub struct NewFleet {
    pub name: String,
    pub url: String,
    pub token: String,
    /// See [`Fleet::pin_sha256`]; empty means none.
    #[serde(default)]
    pub pin_sha256: Option<String>,
}

/// Never shows the token.
impl std::fmt::Debug for NewFleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewFleet")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn invalid(field: &str, message: String) -> ApiError {
    ApiError::new(ErrorKind::Invalid, message).field(field)
}

/// Checks a fleet's name: 1..=64 characters of letters, digits, `-`, `_`,
/// `.` or space, and not the embedded controller's name.
pub fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    let ok_chars = name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ' '));
    if name.is_empty() || name.chars().count() > MAX_NAME || !ok_chars {
        return Err(invalid(
            "name",
            format!("a fleet's name is 1..={MAX_NAME} letters, digits, spaces or - _ ."),
        )
        .limit(MAX_NAME as u64));
    }
    if name.eq_ignore_ascii_case(LOCAL) {
        return Err(invalid(
            "name",
            format!("{LOCAL:?} is the embedded controller; name the fleet otherwise"),
        ));
    }
    Ok(name.to_owned())
}

impl NewFleet {
    /// The fleet and its token, or the first field that is wrong.
    pub fn check(&self) -> Result<(Fleet, String), ApiError> {
        let name = check_name(&self.name)?;
        let url = self.url.trim().trim_end_matches('/');
        if url.len() > MAX_URL {
            return Err(invalid(
                "url",
                format!("the controller URL is longer than {MAX_URL} bytes"),
            )
            .limit(MAX_URL as u64));
        }
        let well_formed = url
            .split_once("://")
            .filter(|(scheme, rest)| {
                matches!(*scheme, "http" | "https")
                    && !rest.is_empty()
                    && !rest.contains(char::is_whitespace)
                    && !rest.contains(['?', '#', '@'])
            })
            .is_some();
        if !well_formed {
            return Err(invalid(
                "url",
                "the controller URL must be http:// or https:// and a host, with no user, query or fragment".into(),
            ));
        }
        if self.token.len() > MAX_TOKEN {
            return Err(invalid(
                "token",
                format!("the API token is longer than {MAX_TOKEN} bytes"),
            )
            .limit(MAX_TOKEN as u64));
        }
        // The server's own rule for tokens.
        ApiToken::new(self.token.clone()).map_err(|e| invalid("token", e.message))?;
        let pin = self
            .pin_sha256
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty());
        if let Some(pin) = pin {
            oshal_core::tls::Trust::pin(pin).map_err(|e| invalid("pin_sha256", e.why))?;
        }
        Ok((
            Fleet {
                name,
                url: url.to_owned(),
                pin_sha256: pin.map(str::to_owned),
            },
            self.token.clone(),
        ))
    }
}

fn keyring_error(e: keyring::Error) -> ApiError {
    ApiError::new(ErrorKind::Internal, format!("the OS keyring refused: {e}"))
}

fn entry(name: &str) -> Result<keyring::Entry, ApiError> {
    keyring::Entry::new(KEYRING_SERVICE, &format!("fleet:{name}")).map_err(keyring_error)
}

/// Files a fleet's token in the OS keyring.
pub fn save_token(name: &str, token: &str) -> Result<(), ApiError> {
    entry(name)?.set_password(token).map_err(keyring_error)
}

/// A fleet's token from the OS keyring.
pub fn load_token(name: &str) -> Result<String, ApiError> {
    match entry(name)?.get_password() {
        Ok(t) => Ok(t),
        Err(keyring::Error::NoEntry) => Err(ApiError::new(
            ErrorKind::NotFound,
            format!("no token for fleet {name:?} in the OS keyring; add the fleet again"),
        )
        .field("name")),
        Err(e) => Err(keyring_error(e)),
    }
}

/// Removes a fleet's token from the OS keyring (absent is fine).
pub fn delete_token(name: &str) -> Result<(), ApiError> {
    match entry(name)?.delete_credential() {
        Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(e) => Err(keyring_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123";

    fn new(name: &str, url: &str, token: &str) -> NewFleet {
        NewFleet {
            name: name.into(),
            url: url.into(),
            token: token.into(),
            pin_sha256: None,
        }
    }

    #[test]
    fn a_good_fleet_is_trimmed_and_kept() {
        let (fleet, token) = new(" prod eu ", "https://ctl.example:8080/", TOKEN)
            .check()
            .unwrap();
        assert_eq!(
            fleet,
            Fleet {
                name: "prod eu".into(),
                url: "https://ctl.example:8080".into(),
                pin_sha256: None,
            }
        );
        assert_eq!(token, TOKEN);
        let pinned = NewFleet {
            pin_sha256: Some(format!(" {} ", "ab".repeat(32))),
            ..new("p", "https://h", TOKEN)
        };
        assert_eq!(
            pinned.check().unwrap().0.pin_sha256,
            Some("ab".repeat(32)),
            "kept, trimmed"
        );
    }

    #[test]
    fn bad_input_names_its_field_and_limit() {
        let cases = [
            (new("", "http://h", TOKEN), "name"),
            (new(&"n".repeat(MAX_NAME + 1), "http://h", TOKEN), "name"),
            (new("a/b", "http://h", TOKEN), "name"),
            (new("Local", "http://h", TOKEN), "name"),
            (new("p", "ftp://h", TOKEN), "url"),
            (new("p", "http://", TOKEN), "url"),
            (new("p", "h:8080", TOKEN), "url"),
            (new("p", "http://u:pw@h", TOKEN), "url"),
            (new("p", "http://h/?token=x", TOKEN), "url"),
            (
                new("p", &format!("http://{}", "h".repeat(MAX_URL)), TOKEN),
                "url",
            ),
            (new("p", "http://h", "short"), "token"),
            (new("p", "http://h", &"t".repeat(MAX_TOKEN + 1)), "token"),
            (new("p", "http://h", "has a space in it, sixteen+"), "token"),
            (
                NewFleet {
                    pin_sha256: Some("AB:CD".into()),
                    ..new("p", "https://h", TOKEN)
                },
                "pin_sha256",
            ),
        ];
        for (input, field) in cases {
            let err = input.check().unwrap_err();
            assert_eq!(err.field.as_deref(), Some(field), "{input:?}: {err:?}");
            assert_eq!(err.kind, ErrorKind::Invalid);
        }
        let long = new(&"n".repeat(MAX_NAME + 1), "http://h", TOKEN)
            .check()
            .unwrap_err();
        assert_eq!(long.limit, Some(MAX_NAME as u64));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let shown = format!("{:?}", new("p", "http://h", TOKEN));
        assert!(!shown.contains(TOKEN), "{shown}");
    }

    /// The real OS keyring. `scripts/test` runs the tests inside a D-Bus
    /// session with an unlocked gnome-keyring and sets
    /// `OSHAL_TEST_KEYRING=1`; elsewhere (a plain `cargo test` on a machine
    /// whose keyring would prompt) this says so and does nothing.
    #[test]
    fn tokens_round_trip_through_the_os_keyring() {
        if std::env::var_os("OSHAL_TEST_KEYRING").is_none() {
            eprintln!("OSHAL_TEST_KEYRING unset: the keyring round trip is not run");
            return;
        }
        let name = format!("test-{}", std::process::id());
        save_token(&name, TOKEN).unwrap();
        assert_eq!(load_token(&name).unwrap(), TOKEN);
        save_token(&name, "another-token-0123456789").unwrap();
        assert_eq!(load_token(&name).unwrap(), "another-token-0123456789");
        delete_token(&name).unwrap();
        let gone = load_token(&name).unwrap_err();
        assert_eq!(gone.kind, ErrorKind::NotFound);
        delete_token(&name).unwrap();
    }
}
