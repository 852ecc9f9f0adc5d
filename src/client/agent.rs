//! The unlocked-key agent: one background process per profile that holds the unlocked identity
//! for a working session, like `ssh-agent`, so that the deliberate scrypt cost of the key file
//! (about a second) is paid once per session rather than once per command.
//!
//! The agent listens on `PROFILE/agent.sock`, a Unix socket in the profile folder (mode 0700)
//! with mode 0600: only the profile's owner (and root) can connect. It ends, wiping the keys, when
//! it has not been asked for them for the idle period, when its maximum lifetime is over, or on
//! `attache agent stop`. What it does not protect against is written down in the README ("The
//! unlocked-key agent"): any process of the same user can ask it for the keys while it runs,
//! exactly as with the passphrase in `ATTACHE_PASSPHRASE`; its memory is not locked against
//! swapping.
//!
//! Protocol, one request per connection: the client writes one line, `attache-agent/1 keys`,
//! `attache-agent/1 status` or `attache-agent/1 stop`; the agent answers `keys` with the 64
//! secret bytes (X25519 scalar, Ed25519 seed), `status` with `expires AT idle-until AT` (seconds
//! since the epoch), and `stop` with `stopped`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::crypto::Identity;

/// The socket's file name in the profile folder.
pub const SOCKET: &str = "agent.sock";
/// Default idle period after which the agent ends.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(15 * 60);
/// Default longest life of an agent.
pub const DEFAULT_MAX: Duration = Duration::from_secs(8 * 3600);
/// Longest life an agent may be given.
pub const LONGEST_MAX: Duration = Duration::from_secs(24 * 3600);

const KEYS: &[u8] = b"attache-agent/1 keys\n";
const STATUS: &[u8] = b"attache-agent/1 status\n";
const STOP: &[u8] = b"attache-agent/1 stop\n";
/// How long one exchange may take before the other side gives up.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a running agent reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentStatus {
    /// When it ends at the latest (seconds since the epoch).
    pub expires_at: i64,
    /// When it ends if nobody asks for the keys before (seconds since the epoch).
    pub idle_until: i64,
}

/// The identity's 64 secret bytes (X25519 scalar, Ed25519 seed), to hand to an agent process
/// over a pipe. Secret: wiped on drop.
pub fn handoff(identity: &Identity) -> zeroize::Zeroizing<[u8; 64]> {
    let (x, seed) = identity.secret_keys();
    let mut s = zeroize::Zeroizing::new([0u8; 64]);
    s[..32].copy_from_slice(x);
    s[32..].copy_from_slice(seed);
    s
}

/// The identity from [`handoff`]'s bytes.
pub fn from_handoff(secret: &[u8; 64]) -> Result<Identity, crate::crypto::CryptoError> {
    let x: zeroize::Zeroizing<[u8; 32]> = zeroize::Zeroizing::new([0; 32]);
    let seed: zeroize::Zeroizing<[u8; 32]> = zeroize::Zeroizing::new([0; 32]);
    let (mut x, mut seed) = (x, seed);
    x.copy_from_slice(&secret[..32]);
    seed.copy_from_slice(&secret[32..]);
    Identity::from_secret_keys(&x, &seed)
}

/// The socket path of the profile folder `dir`.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join(SOCKET)
}

#[cfg(unix)]
mod imp {
    use std::io::{self, Read, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use zeroize::Zeroizing;

    use super::{AgentStatus, EXCHANGE_TIMEOUT, KEYS, STATUS, STOP, socket_path};
    use crate::client::ClientError;
    use crate::crypto::Identity;

    fn now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }

    /// One request to the agent of `dir`; `None` if no agent answers.
    fn ask(dir: &Path, request: &[u8], max_answer: usize) -> Option<Zeroizing<Vec<u8>>> {
        let mut stream = UnixStream::connect(socket_path(dir)).ok()?;
        stream.set_read_timeout(Some(EXCHANGE_TIMEOUT)).ok()?;
        stream.set_write_timeout(Some(EXCHANGE_TIMEOUT)).ok()?;
        stream.write_all(request).ok()?;
        let mut answer = Zeroizing::new(Vec::with_capacity(max_answer));
        stream
            .take(max_answer as u64 + 1)
            .read_to_end(&mut answer)
            .ok()?;
        (answer.len() <= max_answer).then_some(answer)
    }

    pub(super) fn fetch(dir: &Path) -> Option<Identity> {
        let answer = ask(dir, KEYS, 64)?;
        let x25519: Zeroizing<[u8; 32]> = Zeroizing::new(answer.get(..32)?.try_into().ok()?);
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(answer.get(32..64)?.try_into().ok()?);
        Identity::from_secret_keys(&x25519, &seed).ok()
    }

    pub(super) fn status(dir: &Path) -> Option<AgentStatus> {
        let answer = ask(dir, STATUS, 128)?;
        let text = std::str::from_utf8(&answer).ok()?;
        let mut words = text.split_whitespace();
        match (words.next()?, words.next()?, words.next()?, words.next()?) {
            ("expires", at, "idle-until", idle) => Some(AgentStatus {
                expires_at: at.parse().ok()?,
                idle_until: idle.parse().ok()?,
            }),
            _ => None,
        }
    }

    pub(super) fn stop(dir: &Path) -> bool {
        ask(dir, STOP, 16).is_some_and(|a| a.as_slice() == b"stopped\n")
    }

    pub(super) fn serve(
        dir: &Path,
        identity: Identity,
        idle: Duration,
        max: Duration,
        ready: impl FnOnce(AgentStatus),
    ) -> Result<(), ClientError> {
        let path = socket_path(dir);
        if fetch(dir).is_some() {
            return Err(ClientError::Profile(format!(
                "an agent already runs for {} (`attache agent stop` ends it)",
                dir.display()
            )));
        }
        // Nobody answers on it: a socket left by an agent that was killed.
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .map_err(|e| ClientError::io(format!("cannot listen on {}", path.display()), e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| ClientError::io(format!("cannot protect {}", path.display()), e))?;
        let secret = super::handoff(&identity);
        drop(identity);
        let idle_secs = i64::try_from(idle.as_secs()).unwrap_or(i64::MAX);
        let expires_at = now().saturating_add(i64::try_from(max.as_secs()).unwrap_or(i64::MAX));
        let idle_until = Arc::new(AtomicI64::new(now().saturating_add(idle_secs)));
        // The watchdog wakes the accept loop once a second so that expiry is noticed without a
        // client; it does so by connecting, which the loop treats as a no-op.
        {
            let dir = dir.to_owned();
            std::thread::spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    if UnixStream::connect(socket_path(&dir)).is_err() {
                        return;
                    }
                }
            });
        }
        ready(AgentStatus {
            expires_at,
            idle_until: idle_until.load(Ordering::Relaxed),
        });
        for stream in listener.incoming() {
            let t = now();
            if t >= expires_at || t >= idle_until.load(Ordering::Relaxed) {
                break;
            }
            let Ok(mut stream) = stream else { continue };
            let Ok(request) = read_request(&mut stream) else {
                continue;
            };
            let answer: Zeroizing<Vec<u8>> = match request.as_slice() {
                r if r == KEYS => {
                    idle_until.store(t.saturating_add(idle_secs), Ordering::Relaxed);
                    Zeroizing::new(secret.to_vec())
                }
                r if r == STATUS => Zeroizing::new(
                    format!(
                        "expires {expires_at} idle-until {}\n",
                        idle_until.load(Ordering::Relaxed)
                    )
                    .into_bytes(),
                ),
                r if r == STOP => {
                    let _ = stream.write_all(b"stopped\n");
                    break;
                }
                _ => continue,
            };
            let _ = stream.write_all(&answer);
        }
        let _ = std::fs::remove_file(&path);
        Ok(())
    }

    fn read_request(stream: &mut UnixStream) -> io::Result<Vec<u8>> {
        stream.set_read_timeout(Some(EXCHANGE_TIMEOUT))?;
        stream.set_write_timeout(Some(EXCHANGE_TIMEOUT))?;
        let mut line = Vec::with_capacity(32);
        let mut byte = [0u8; 1];
        while line.len() < 64 {
            if stream.read(&mut byte)? == 0 {
                break;
            }
            line.push(byte[0]);
            if byte[0] == b'\n' {
                break;
            }
        }
        Ok(line)
    }
}

/// The identity held by the agent of profile folder `dir`, if one runs (and has not ended).
/// Asking resets the agent's idle period.
pub fn fetch(dir: &Path) -> Option<Identity> {
    #[cfg(unix)]
    {
        imp::fetch(dir)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// The state of the agent of `dir`, if one runs.
pub fn status(dir: &Path) -> Option<AgentStatus> {
    #[cfg(unix)]
    {
        imp::status(dir)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// Ends the agent of `dir`; false if none was running.
pub fn stop(dir: &Path) -> bool {
    #[cfg(unix)]
    {
        imp::stop(dir)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        false
    }
}

/// Serves `identity` to the profile's owner on `dir/agent.sock` until `idle` passes without a
/// request for the keys, `max` has passed, or [`stop`] is called; wipes the keys and removes the
/// socket then. Calls `ready` once it listens. Blocks; `attache agent start` runs it in a
/// background process.
pub fn serve(
    dir: &Path,
    identity: Identity,
    idle: Duration,
    max: Duration,
    ready: impl FnOnce(AgentStatus),
) -> Result<(), crate::client::ClientError> {
    #[cfg(unix)]
    {
        imp::serve(dir, identity, idle, max.min(LONGEST_MAX), ready)
    }
    #[cfg(not(unix))]
    {
        let _ = (dir, identity, idle, max, ready);
        Err(crate::client::ClientError::Profile(
            "the key agent needs Unix sockets; set ATTACHE_PASSPHRASE instead".into(),
        ))
    }
}
