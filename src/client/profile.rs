//! The local profile: a folder holding the key file (`key.age`), `profile.toml` (server,
//! email, pinned certificate), `contacts.toml` (pinned correspondents), the server's audit key
//! as first seen (`audit-key.txt`) and a cached session token (`session.json`, mode 0600).
//!
//! Files are replaced atomically (written beside, synced, renamed). The session file holds a
//! bearer token, never a secret key; the key file stays locked until something needs it.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::{CertPin, ClientError};
use crate::crypto::{Identity, PublicKeys};

const KEY_FILE: &str = "key.age";
const PROFILE_FILE: &str = "profile.toml";
const CONTACTS_FILE: &str = "contacts.toml";
const SESSION_FILE: &str = "session.json";
const AUDIT_KEY_FILE: &str = "audit-key.txt";

/// What `profile.toml` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// The server's origin, such as `https://127.0.0.1:8443`.
    pub server: String,
    /// This account's email.
    pub email: String,
    /// The pinned server certificate, `sha256:HEX`.
    pub certificate: String,
}

/// A correspondent pinned in `contacts.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// Their 64-byte public keys, base64.
    pub public_keys: String,
    /// The fingerprint (safety number) of those keys, as computed here.
    pub fingerprint: String,
    /// Whether the user compared the safety number and confirmed it (`attache verify`).
    pub verified: bool,
}

impl Contact {
    /// A contact pinned on first use (not yet verified).
    pub fn pin(keys: &PublicKeys) -> Self {
        Self {
            public_keys: STANDARD.encode(keys.to_bytes()),
            fingerprint: keys.fingerprint().to_string(),
            verified: false,
        }
    }

    /// The pinned keys.
    pub fn keys(&self) -> Result<PublicKeys, ClientError> {
        let bytes = STANDARD
            .decode(&self.public_keys)
            .map_err(|_| ClientError::Profile("a contact's public keys are not base64".into()))?;
        Ok(PublicKeys::from_bytes(&bytes)?)
    }
}

/// The pinned correspondents, by email.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contacts {
    /// Email → pinned keys.
    #[serde(default)]
    pub contacts: BTreeMap<String, Contact>,
}

/// The cached session in `session.json`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CachedSession {
    pub(crate) server: String,
    pub(crate) email: String,
    pub(crate) token: String,
    pub(crate) expires_at: i64,
}

/// A profile folder.
#[derive(Debug, Clone)]
pub struct Profile {
    dir: PathBuf,
    /// `profile.toml`.
    pub config: ProfileConfig,
}

impl Profile {
    /// Loads the profile in `dir`.
    pub fn load(dir: &Path) -> Result<Self, ClientError> {
        let path = dir.join(PROFILE_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ClientError::Profile(format!(
                    "no profile in {} (join a server first with `attache join INVITE_URL`)",
                    dir.display()
                )));
            }
            Err(e) => {
                return Err(ClientError::io(
                    format!("cannot read {}", path.display()),
                    e,
                ));
            }
        };
        let config: ProfileConfig = toml::from_str(&text)
            .map_err(|e| ClientError::Profile(format!("{}: {}", path.display(), e.message())))?;
        Ok(Self {
            dir: dir.to_owned(),
            config,
        })
    }

    /// Whether `dir` already holds a profile.
    pub fn exists(dir: &Path) -> bool {
        dir.join(PROFILE_FILE).exists()
    }

    /// Writes a new `profile.toml` into `dir` (creating the folder).
    pub fn create(dir: &Path, config: ProfileConfig) -> Result<Self, ClientError> {
        create_dir(dir)?;
        let text = toml::to_string(&config)
            .map_err(|e| ClientError::Profile(format!("cannot encode the profile: {e}")))?;
        write_atomic(&dir.join(PROFILE_FILE), text.as_bytes())?;
        Ok(Self {
            dir: dir.to_owned(),
            config,
        })
    }

    /// The profile folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key file's path in `dir`.
    pub fn key_file_path(dir: &Path) -> PathBuf {
        dir.join(KEY_FILE)
    }

    /// The pinned server certificate.
    pub fn certificate(&self) -> Result<CertPin, ClientError> {
        CertPin::parse(&self.config.certificate)
    }

    /// Unlocks the key file with `passphrase` (a deliberate scrypt second).
    pub fn unlock(&self, passphrase: &str) -> Result<Identity, ClientError> {
        unlock_key_file(&self.dir, passphrase)
    }

    /// Loads `contacts.toml` (empty if absent).
    pub fn contacts(&self) -> Result<Contacts, ClientError> {
        let path = self.dir.join(CONTACTS_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| ClientError::Profile(format!("{}: {}", path.display(), e.message()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Contacts::default()),
            Err(e) => Err(ClientError::io(
                format!("cannot read {}", path.display()),
                e,
            )),
        }
    }

    /// Replaces `contacts.toml`.
    pub fn save_contacts(&self, contacts: &Contacts) -> Result<(), ClientError> {
        let text = toml::to_string(contacts)
            .map_err(|e| ClientError::Profile(format!("cannot encode contacts: {e}")))?;
        write_atomic(&self.dir.join(CONTACTS_FILE), text.as_bytes())
    }

    /// The server's audit key (Ed25519, 32 bytes) pinned the first time it was seen, if any.
    pub fn pinned_audit_key(&self) -> Result<Option<[u8; 32]>, ClientError> {
        let path = self.dir.join(AUDIT_KEY_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(ClientError::io(
                    format!("cannot read {}", path.display()),
                    e,
                ));
            }
        };
        STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .map(Some)
            .ok_or_else(|| {
                ClientError::Profile(format!(
                    "{} does not hold a 32-byte key in base64",
                    path.display()
                ))
            })
    }

    /// Pins the server's audit key.
    pub fn pin_audit_key(&self, key: &[u8; 32]) -> Result<(), ClientError> {
        let text = format!("{}\n", STANDARD.encode(key));
        write_atomic(&self.dir.join(AUDIT_KEY_FILE), text.as_bytes())
    }

    /// The cached session token, if it is for this server and account and valid past `now`
    /// plus a minute.
    pub(crate) fn cached_session(&self, now: i64) -> Option<String> {
        let bytes = fs::read(self.dir.join(SESSION_FILE)).ok()?;
        // A damaged cache is only a cache: sign in again.
        let session: CachedSession = serde_json::from_slice(&bytes).ok()?;
        (session.server == self.config.server
            && session.email == self.config.email
            && session.expires_at > now + 60)
            .then_some(session.token)
    }

    /// Caches a session token (mode 0600).
    pub(crate) fn save_session(&self, token: &str, expires_at: i64) -> Result<(), ClientError> {
        let session = CachedSession {
            server: self.config.server.clone(),
            email: self.config.email.clone(),
            token: token.to_owned(),
            expires_at,
        };
        let bytes = serde_json::to_vec(&session)
            .map_err(|e| ClientError::Profile(format!("cannot encode the session: {e}")))?;
        write_atomic(&self.dir.join(SESSION_FILE), &bytes)
    }

    /// Forgets the cached session.
    pub(crate) fn forget_session(&self) {
        // Absent is the goal; any other failure leaves a token the server will refuse anyway.
        let _ = fs::remove_file(self.dir.join(SESSION_FILE));
    }
}

/// Unlocks `dir/key.age`.
pub(crate) fn unlock_key_file(dir: &Path, passphrase: &str) -> Result<Identity, ClientError> {
    let path = dir.join(KEY_FILE);
    let file = fs::read(&path)
        .map_err(|e| ClientError::io(format!("cannot read key file {}", path.display()), e))?;
    Ok(crate::crypto::open_key_file(&file, passphrase)?)
}

/// Creates a folder readable only by its owner (if it does not exist).
pub(crate) fn create_dir(dir: &Path) -> Result<(), ClientError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| ClientError::io(format!("cannot create {}", dir.display()), e))
}

/// Writes `bytes` to `path` atomically, mode 0600.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    let mut tmp_name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut file = create_private(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        ClientError::io(format!("cannot write {}", path.display()), e)
    })
}

/// Creates (truncating) a file readable only by its owner.
pub(crate) fn create_private(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "attache-profile-test-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn profile_round_trip() {
        let dir = temp_dir("round-trip");
        assert!(!Profile::exists(&dir));
        assert!(matches!(Profile::load(&dir), Err(ClientError::Profile(_))));
        let config = ProfileConfig {
            server: "https://127.0.0.1:8443".into(),
            email: "ann@firm.example".into(),
            certificate: format!("sha256:{}", "ab".repeat(32)),
        };
        Profile::create(&dir, config.clone()).unwrap();
        let profile = Profile::load(&dir).unwrap();
        assert_eq!(profile.config, config);
        assert_eq!(profile.certificate().unwrap().0, [0xab; 32]);

        assert_eq!(profile.contacts().unwrap(), Contacts::default());
        let keys = Identity::generate().unwrap();
        let mut contacts = Contacts::default();
        contacts
            .contacts
            .insert("bob@client.example".into(), Contact::pin(keys.public()));
        profile.save_contacts(&contacts).unwrap();
        let loaded = profile.contacts().unwrap();
        assert_eq!(loaded, contacts);
        assert_eq!(
            loaded.contacts["bob@client.example"].keys().unwrap(),
            *keys.public()
        );

        assert_eq!(profile.cached_session(1000), None);
        profile.save_session("tok", 2000).unwrap();
        assert_eq!(profile.cached_session(1000).as_deref(), Some("tok"));
        assert_eq!(
            profile.cached_session(1950),
            None,
            "expires within a minute"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.join(SESSION_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        profile.forget_session();
        assert_eq!(profile.cached_session(1000), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
