//! The control socket: a Unix socket in the data folder (`DATA/control.sock`, mode 0600) on
//! which the running server takes one request, a backup, from its own user (`attache backup`;
//! sled locks the data folder, so no other process can copy it).
//!
//! Every input is bounded: one JSON line of at most [`MAX_REQUEST`] bytes, read within
//! [`READ_TIMEOUT`], from a peer whose user id is the socket's owner; one connection at a time.
//! It must never accept anything but a backup, nor write outside the output folder it names.

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::storage::{BackupReport, Store};

/// The socket's name inside the data folder.
pub const SOCKET: &str = "control.sock";
/// Longest request line, in bytes (the newline included).
pub const MAX_REQUEST: usize = 4096;
/// A request must arrive within this long after connecting.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest output path a request may name, in bytes.
pub const MAX_PATH: usize = 1024;
/// The folder inside the data folder that holds backups by default.
pub const BACKUPS: &str = "backups";
/// Longest reply the client reads, in bytes.
const MAX_REPLY: u64 = 64 * 1024;

/// A request on the control socket: one JSON object on one line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ControlRequest {
    /// What to do; only `backup` is accepted.
    pub op: String,
    /// The snapshot folder: absolute, not existing yet; inside the data folder only under
    /// `backups/`. `None`: `DATA/backups/<UTC time>`.
    pub out: Option<String>,
}

/// The answer: a finished backup or why it failed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ControlReply {
    /// The snapshot is written and synced.
    Backup(BackupSummary),
    /// The request was refused or the backup failed.
    Error(String),
}

/// What a backup holds, as the control socket reports it: the wire form of
/// [`BackupReport`], kept apart so that the storage type never becomes a format by accident.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupSummary {
    /// The snapshot folder.
    pub path: String,
    /// Accounts.
    pub accounts: u64,
    /// Messages.
    pub messages: u64,
    /// Committed documents (items).
    pub documents: u64,
    /// Uploads in progress left out.
    pub uploads_left_out: u64,
    /// Database records in every tree.
    pub records: u64,
    /// Document files hard-linked.
    pub files_linked: u64,
    /// Document files copied.
    pub files_copied: u64,
    /// Bytes of the snapshot's database.
    pub database_bytes: u64,
    /// Bytes of its document files.
    pub file_bytes: u64,
    /// Microseconds writes were paused.
    pub pause_micros: u64,
    /// Microseconds spent waiting for requests in flight before the pause.
    pub wait_micros: u64,
}

impl From<&BackupReport> for BackupSummary {
    fn from(r: &BackupReport) -> Self {
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Self {
            path: r.path.display().to_string(),
            accounts: r.accounts,
            messages: r.messages,
            documents: r.documents,
            uploads_left_out: r.uploads_left_out,
            records: r.records,
            files_linked: r.files_linked,
            files_copied: r.files_copied,
            database_bytes: r.database_bytes,
            file_bytes: r.file_bytes,
            pause_micros: micros(r.pause),
            wait_micros: micros(r.wait),
        }
    }
}

/// Why `attache backup` got no snapshot.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Nothing answers on the data folder's socket.
    #[error(
        "no Attache server is running on the data folder {data} (cannot connect to {socket}: \
         {cause}); start it, or give the --data it runs with"
    )]
    NotRunning {
        /// The data folder.
        data: PathBuf,
        /// The socket path.
        socket: PathBuf,
        /// The connection error.
        cause: std::io::Error,
    },
    /// The server refused the request or the backup failed.
    #[error("backup failed: {0}")]
    Refused(String),
    /// The conversation broke off (the server stopped, or answered something else).
    #[error("the server's answer was cut off or garbled: {0}")]
    Protocol(String),
}

/// Asks the server running on `data` for a backup into `out` (`None`: its default place) and
/// waits for it. Blocking; a relative `out` is taken from the current folder.
pub fn request_backup(data: &Path, out: Option<&Path>) -> Result<BackupSummary, ControlError> {
    let socket = data.join(SOCKET);
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).map_err(|cause| {
        ControlError::NotRunning {
            data: data.to_path_buf(),
            socket: socket.clone(),
            cause,
        }
    })?;
    let out = match out {
        Some(p) => Some(
            std::path::absolute(p)
                .map_err(|e| ControlError::Refused(format!("{}: {e}", p.display())))?
                .to_str()
                .ok_or_else(|| ControlError::Refused("the output path is not UTF-8".into()))?
                .to_owned(),
        ),
        None => None,
    };
    let request = ControlRequest {
        op: "backup".into(),
        out,
    };
    let mut line =
        serde_json::to_vec(&request).map_err(|e| ControlError::Protocol(e.to_string()))?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .and_then(|()| stream.shutdown(std::net::Shutdown::Write))
        .map_err(|e| ControlError::Protocol(e.to_string()))?;
    let mut reply = Vec::new();
    stream
        .take(MAX_REPLY)
        .read_to_end(&mut reply)
        .map_err(|e| ControlError::Protocol(e.to_string()))?;
    match serde_json::from_slice::<ControlReply>(&reply) {
        Ok(ControlReply::Backup(summary)) => Ok(summary),
        Ok(ControlReply::Error(e)) => Err(ControlError::Refused(e)),
        Err(e) => Err(ControlError::Protocol(format!(
            "{e} ({} bytes received)",
            reply.len()
        ))),
    }
}

/// Binds `DATA/control.sock` (replacing a socket left by a server that did not stop cleanly:
/// the caller holds the data folder's lock, so no other server uses it), mode 0600.
pub(crate) fn bind(data: &Path) -> std::io::Result<UnixListener> {
    let path = data.join(SOCKET);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(&path)?;
    // The data folder is 0700 already; the socket is its user's alone as well.
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(listener)
}

/// Answers control requests, one connection at a time, until the task is aborted.
pub(crate) async fn serve(listener: UnixListener, store: Store, data: PathBuf) {
    let owner = match std::fs::metadata(data.join(SOCKET)) {
        Ok(m) => m.uid(),
        Err(e) => {
            tracing::error!(error = %e, "the control socket is gone; backups are unavailable");
            return;
        }
    };
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Err(e) = answer(stream, &store, &data, owner).await {
            tracing::debug!(error = %e, "control connection ended with an error");
        }
    }
}

async fn answer(
    mut stream: UnixStream,
    store: &Store,
    data: &Path,
    owner: u32,
) -> std::io::Result<()> {
    let reply = match stream.peer_cred() {
        Ok(cred) if cred.uid() == owner => match read_request(&mut stream).await {
            Ok(request) => match output_folder(&request, data, SystemTime::now()) {
                Ok(out) => match store.backup(&out).await {
                    // The store logs the backup with its pause.
                    Ok(report) => ControlReply::Backup(BackupSummary::from(&report)),
                    Err(e) => {
                        tracing::error!(error = %e, "backup failed");
                        ControlReply::Error(e.to_string())
                    }
                },
                Err(e) => ControlReply::Error(e),
            },
            Err(e) => ControlReply::Error(e),
        },
        Ok(cred) => {
            tracing::warn!(uid = cred.uid(), "control socket: refused another user");
            ControlReply::Error("only the server's own user may ask for a backup".into())
        }
        Err(e) => ControlReply::Error(format!("cannot tell who is asking: {e}")),
    };
    let mut line = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line).await?;
    stream.shutdown().await
}

/// Reads one request line: at most [`MAX_REQUEST`] bytes, within [`READ_TIMEOUT`].
async fn read_request(stream: &mut UnixStream) -> Result<ControlRequest, String> {
    let mut buf = Vec::with_capacity(256);
    let read = async {
        let mut piece = [0u8; 1024];
        loop {
            let n = stream.read(&mut piece).await.map_err(|e| e.to_string())?;
            let Some(got) = piece.get(..n) else {
                return Err("read past the buffer".to_owned());
            };
            buf.extend_from_slice(got);
            if buf.len() > MAX_REQUEST {
                return Err(format!("the request is longer than {MAX_REQUEST} bytes"));
            }
            if n == 0 || got.contains(&b'\n') {
                return Ok(());
            }
        }
    };
    match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(format!(
                "no request within {} seconds",
                READ_TIMEOUT.as_secs()
            ));
        }
    }
    let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
    let request: ControlRequest = serde_json::from_slice(line)
        .map_err(|_| "the request is not a control request (one JSON line)".to_owned())?;
    if request.op != "backup" {
        return Err("unknown request: only `backup` is accepted".into());
    }
    Ok(request)
}

/// Where the snapshot goes: the request's folder if it is acceptable, else
/// `DATA/backups/<UTC time>`.
fn output_folder(
    request: &ControlRequest,
    data: &Path,
    now: SystemTime,
) -> Result<PathBuf, String> {
    let Some(out) = &request.out else {
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let secs = i64::try_from(secs).unwrap_or(i64::MAX);
        return Ok(data.join(BACKUPS).join(crate::wire::utc_stamp(secs)));
    };
    if out.len() > MAX_PATH {
        return Err(format!("the output path is longer than {MAX_PATH} bytes"));
    }
    let path = PathBuf::from(out);
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return Err("the output path must be absolute, without `..`".into());
    }
    let data = std::path::absolute(data).map_err(|e| e.to_string())?;
    if path.starts_with(&data) && !path.starts_with(data.join(BACKUPS)) {
        return Err(format!(
            "inside the data folder a backup may go only under {}",
            data.join(BACKUPS).display()
        ));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_folders_are_checked() {
        let data = Path::new("/srv/attache/data");
        let at = UNIX_EPOCH + Duration::from_secs(0);
        let ask = |out: Option<&str>| {
            output_folder(
                &ControlRequest {
                    op: "backup".into(),
                    out: out.map(str::to_owned),
                },
                data,
                at,
            )
        };
        assert_eq!(
            ask(None),
            Ok(PathBuf::from("/srv/attache/data/backups/19700101T000000Z"))
        );
        assert_eq!(ask(Some("/mnt/b/one")), Ok(PathBuf::from("/mnt/b/one")));
        assert_eq!(
            ask(Some("/srv/attache/data/backups/x")),
            Ok(PathBuf::from("/srv/attache/data/backups/x"))
        );
        assert_eq!(
            ask(Some("relative")),
            Err("the output path must be absolute, without `..`".into())
        );
        assert_eq!(
            ask(Some("/mnt/../etc")),
            Err("the output path must be absolute, without `..`".into())
        );
        assert_eq!(
            ask(Some("/srv/attache/data/chunks/x")),
            Err(
                "inside the data folder a backup may go only under /srv/attache/data/backups"
                    .into()
            )
        );
        assert_eq!(
            ask(Some(&"/x".repeat(600))),
            Err("the output path is longer than 1024 bytes".into())
        );
    }
}
