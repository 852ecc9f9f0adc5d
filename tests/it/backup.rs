//! Online backup (issue #6): `attache backup` asks the running server for a snapshot while
//! several CLI clients keep sending messages with documents; a second server started on a copy
//! of the snapshot must list every send acknowledged before the backup began, each must
//! download and verify byte for byte, nothing listed may be half there, and the store must open
//! without a warning. Then the refusals, with their exact messages: no server on the folder,
//! an output folder that exists, and bad input on the control socket.
//! Prints `backup: N acknowledged writes before the backup, N restored, pause X ms`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use serde_json::Value;

use crate::support::{
    NO_LIMITS, attache, content, firm_of_three, free_port, start_server_logging, start_server_with,
    temp_dir,
};

const EMAILS: [&str; 3] = ["ada@firm.example", "ben@firm.example", "cy@firm.example"];
/// Client threads sending at once.
const WRITERS: usize = 4;
/// Sends acknowledged before the backup is asked for.
const BEFORE: usize = 8;
/// Sends acknowledged after it, before the writers stop.
const AFTER: usize = 4;

/// One acknowledged `attache send`.
struct Acked {
    id: String,
    to: Vec<usize>,
    files: BTreeMap<String, Vec<u8>>,
    /// When the CLI process started, and when it exited (after the server's acknowledgement).
    began: Instant,
    at: Instant,
}

/// Sends from `from` to the two others until `stop`: one or two documents each, some of
/// several 64 KiB chunks (a file each), some small (kept in sled).
fn writer(
    root: PathBuf,
    homes: Vec<PathBuf>,
    from: usize,
    writer: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<BTreeMap<String, Acked>>>,
    done: mpsc::Sender<()>,
) {
    let dir = root.join(format!("outgoing-{writer}"));
    std::fs::create_dir_all(&dir).unwrap();
    let to: Vec<usize> = (0..3).filter(|&u| u != from).collect();
    let mut n = 0usize;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let subject = format!("backup w{writer} s{n}");
        let mut files = BTreeMap::new();
        let mut args: Vec<String> = [
            "send",
            "--to",
            &format!("{},{}", EMAILS[to[0]], EMAILS[to[1]]),
            "--subject",
            &subject,
            "--body",
            "A body.",
            "--json",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        for j in 0..1 + n % 2 {
            let len = if (n + j) % 2 == 0 {
                150 * 1024 + n
            } else {
                1000 + n
            };
            let name = format!("w{writer}-s{n}-d{j}.bin");
            let bytes = content(len, (writer * 64 + n * 2 + j) as u8);
            std::fs::write(dir.join(&name), &bytes).unwrap();
            args.push(dir.join(&name).display().to_string());
            files.insert(name, bytes);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let began = Instant::now();
        let out = attache(&homes[from], &args).output().unwrap();
        let at = Instant::now();
        assert!(
            out.status.success(),
            "{subject:?} failed with the server up:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let value: Value = serde_json::from_slice(&out.stdout).unwrap();
        let id = value["id"].as_str().unwrap().to_owned();
        acked.lock().unwrap().insert(
            subject,
            Acked {
                id,
                to: to.clone(),
                files,
                began,
                at,
            },
        );
        let _ = done.send(());
    }
}

/// Downloads message `id` as `home` and returns its files.
fn download(home: &Path, scratch: &Path, id: &str) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let dir = scratch.join(format!("dl-{id}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = attache(home, &["download", id, "--out", dir.to_str().unwrap()])
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        files.insert(name, std::fs::read(&path).unwrap());
    }
    Ok(files)
}

fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_folder(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Sends `bytes` on the control socket of `data` and returns the reply line. (Only the line is
/// read: after an oversize request the server closes with input unread, and the next read would
/// be a reset.)
fn control(data: &Path, bytes: &[u8]) -> String {
    let mut stream = UnixStream::connect(data.join("control.sock")).unwrap();
    stream.write_all(bytes).unwrap();
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).unwrap();
    reply
}

/// `attache backup` refused with exit 1: nothing answers on `data`'s socket, for `cause`.
fn assert_no_server(out: &std::process::Output, data: &Path, cause: &str) {
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "attache: no Attache server is running on the data folder {0} (cannot connect to \
             {0}/control.sock: {cause}); start it, or give the --data it runs with\n",
            data.display()
        )
    );
}

#[test]
fn a_backup_taken_while_clients_write_restores_every_acknowledged_send() {
    let started = Instant::now();
    let dir = temp_dir();
    let root = dir.path();
    let data = root.join("data");
    let port = free_port();
    let server = start_server_with(root, port, NO_LIMITS);

    // Three firm users, each may write to each.
    let users = firm_of_three(root, &server, ["ada", "ben", "cy"], EMAILS);
    let homes: Vec<PathBuf> = users.iter().map(|u| u.home.clone()).collect();

    // No server runs on this folder: a clear refusal, exit 1.
    let nowhere = root.join("nowhere");
    let out = attache(root, &["backup", "--data", nowhere.to_str().unwrap()])
        .output()
        .unwrap();
    assert_no_server(&out, &nowhere, "No such file or directory (os error 2)");

    // Writers send until told to stop; the backup is asked for in the middle.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<BTreeMap<String, Acked>>> = Arc::default();
    let (done, acks) = mpsc::channel();
    let threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (root, homes, stop, acked, done) = (
                root.to_path_buf(),
                homes.clone(),
                stop.clone(),
                acked.clone(),
                done.clone(),
            );
            std::thread::spawn(move || writer(root, homes, w % 3, w, stop, acked, done))
        })
        .collect();
    for _ in 0..BEFORE {
        acks.recv().unwrap();
    }

    let snapshot = root.join("snapshot");
    let backup_began = Instant::now();
    let out = attache(
        root,
        &[
            "backup",
            "--data",
            data.to_str().unwrap(),
            "--out",
            snapshot.to_str().unwrap(),
            "--json",
        ],
    )
    .output()
    .unwrap();
    let backup_ended = Instant::now();
    assert!(
        out.status.success(),
        "attache backup failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let before: BTreeSet<String> = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, a)| a.at < backup_began)
        .map(|(s, _)| s.clone())
        .collect();
    for _ in 0..AFTER {
        acks.recv().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let during = acked
        .values()
        .filter(|a| a.at >= backup_began && a.at <= backup_ended)
        .count();
    // Sends running when the backup was asked for: the writes went on around it.
    let in_flight = acked
        .values()
        .filter(|a| a.began < backup_began && a.at > backup_began)
        .count();

    // The default output folder is DATA/backups/<UTC time>, and the text report says what is in it.
    let text = attache(root, &["backup", "--data", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    print!("{text}");
    let first = text.lines().next().unwrap();
    let default_place = first.strip_prefix("backup written to ").unwrap();
    assert!(
        default_place.starts_with(&format!("{}/backups/", data.display()))
            && default_place.ends_with('Z'),
        "{text}"
    );
    assert!(
        text.contains(" documents, ") && text.contains("writes paused "),
        "{text}"
    );

    // A second backup into the same folder is refused, and the first is untouched.
    let again = attache(
        root,
        &[
            "backup",
            "--data",
            data.to_str().unwrap(),
            "--out",
            snapshot.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&again.stderr),
        format!(
            "attache: backup failed: the output folder {} already exists\n",
            snapshot.display()
        )
    );

    // Bad input on the control socket: refused with a reason, bounded, and the server goes on.
    assert_eq!(
        control(&data, b"hello\n"),
        "{\"error\":\"the request is not a control request (one JSON line)\"}\n"
    );
    assert_eq!(
        control(&data, b"{\"op\":\"restore\",\"out\":null}\n"),
        "{\"error\":\"unknown request: only `backup` is accepted\"}\n"
    );
    assert_eq!(
        control(&data, b"{\"op\":\"backup\",\"out\":\"snap\"}\n"),
        "{\"error\":\"the output path must be absolute, without `..`\"}\n"
    );
    assert_eq!(
        control(&data, &[b'a'; 5000]),
        "{\"error\":\"the request is longer than 4096 bytes\"}\n"
    );
    let silent = Instant::now();
    let idle = UnixStream::connect(data.join("control.sock")).unwrap();
    let mut reply = String::new();
    BufReader::new(idle).read_line(&mut reply).unwrap();
    assert_eq!(reply, "{\"error\":\"no request within 5 seconds\"}\n");
    assert!(silent.elapsed().as_secs() >= 5);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data.join("control.sock"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // The server is gone (SIGKILL leaves its socket behind): refused, exit 1.
    drop(server);
    let out = attache(root, &["backup", "--data", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert_no_server(&out, &data, "Connection refused (os error 111)");

    // Restore: a copy of the snapshot as the data folder of a new server, same keys and port.
    let restored = temp_dir();
    copy_folder(&snapshot, &restored.path().join("data"));
    copy_folder(&root.join("keys"), &restored.path().join("keys"));
    let log_path = root.join("restored.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let server = start_server_logging(restored.path(), port, NO_LIMITS, log);

    let scratch = root.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let mut missing = Vec::new();
    let mut listed_total = 0usize;
    let mut verified: BTreeSet<(usize, String)> = BTreeSet::new();
    for (user, home) in homes.iter().enumerate() {
        let inbox = attache(home, &["inbox", "--json", "--limit", "200"])
            .output()
            .unwrap();
        assert!(
            inbox.status.success(),
            "{}",
            String::from_utf8_lossy(&inbox.stderr)
        );
        let inbox: Value = serde_json::from_slice(&inbox.stdout).unwrap();
        let listed: BTreeMap<String, String> = inbox
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["id"].as_str().unwrap().to_owned(),
                    e["subject"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        listed_total += listed.len();
        // Nothing listed is half there: whatever the snapshot holds downloads whole.
        for (id, subject) in &listed {
            let send = acked
                .get(subject)
                .unwrap_or_else(|| panic!("{subject:?} restored but never acknowledged"));
            assert_eq!(&send.id, id, "{subject:?}");
            match download(home, &scratch, id) {
                Ok(files) if files == send.files => {
                    verified.insert((user, id.clone()));
                }
                Ok(files) => missing.push(format!(
                    "{subject:?} downloads as {:?}",
                    files.iter().map(|(n, b)| (n, b.len())).collect::<Vec<_>>()
                )),
                Err(e) => missing.push(format!("{subject:?} is listed but fails: {e}")),
            }
        }
        for subject in &before {
            let send = &acked[subject];
            if !send.to.contains(&user) {
                continue;
            }
            if !verified.contains(&(user, send.id.clone())) && !listed.contains_key(&send.id) {
                missing.push(format!(
                    "{subject:?} is not in the inbox of {}",
                    EMAILS[user]
                ));
            }
        }
    }
    drop(server);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        !log.contains("WARN") && !log.contains("ERROR"),
        "the restored store did not open cleanly:\n{log}"
    );
    let expected: usize = before.iter().map(|s| acked[s].to.len()).sum();
    // A send is restored when every recipient lists it and it downloads whole for each.
    let restored_sends = before
        .iter()
        .filter(|s| {
            let a = &acked[*s];
            a.to.iter().all(|&u| verified.contains(&(u, a.id.clone())))
        })
        .count();
    let pause_ms = summary["pause_micros"].as_u64().unwrap() as f64 / 1000.0;
    println!(
        "backup: {} sends acknowledged in all ({in_flight} running when the backup was asked \
         for, {during} acknowledged while it ran), {listed_total} inbox entries restored and downloaded, snapshot: {} documents, {} messages, {} bytes \
         ({} files linked), {:.1} s",
        acked.len(),
        summary["documents"],
        summary["messages"],
        summary["database_bytes"].as_u64().unwrap() + summary["file_bytes"].as_u64().unwrap(),
        summary["files_linked"],
        started.elapsed().as_secs_f64()
    );
    println!(
        "backup: {} acknowledged writes before the backup ({expected} inbox entries), \
         {restored_sends} restored, pause {pause_ms:.1} ms (waited {:.1} ms for requests in \
         flight)",
        before.len(),
        summary["wait_micros"].as_u64().unwrap() as f64 / 1000.0
    );
    assert!(
        missing.is_empty(),
        "missing after restore:\n{}",
        missing.join("\n")
    );
    assert_eq!(restored_sends, before.len());
    assert!(before.len() >= BEFORE);
    assert!(
        in_flight > 0,
        "no send was running when the backup was asked for"
    );
}
