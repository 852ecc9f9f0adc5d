//! Crash safety: the real server is killed with SIGKILL at random moments while several CLI
//! clients send messages with documents, restarted on the same data folder, and then every
//! send it acknowledged must be in the recipient's inbox and download and verify byte for byte,
//! and nothing it did not acknowledge may be half there (an inbox entry whose download fails).
//! Prints `crash: N cycles, M acknowledged writes, 0 lost`.
//!
//! SIGKILL ends the process, not the machine: what the kernel already holds survives, so this
//! proves that nothing is acknowledged before sled has written it (a server that answered
//! before its flush loses sends here), not that the fsync reaches the disk.
//!
//! The kill moments come from a seeded generator; the seed is printed, and
//! `ATTACHE_CRASH_SEED=N` replays the same schedule (the operating system's timing still
//! varies). `ATTACHE_CRASH_CYCLES=N` changes the number of cycles (default 20).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    NO_LIMITS, Server, attache, content, firm_of_three, free_port, start_server_with, temp_dir,
};

/// Concurrent `attache send` processes per cycle.
const CLIENTS: usize = 5;
const EMAILS: [&str; 3] = ["ada@firm.example", "ben@firm.example", "cy@firm.example"];

/// splitmix64: a small, well-mixed generator, enough to pick sizes and moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One `attache send` as the test asked for it.
struct Send {
    from: usize,
    to: Vec<usize>,
    subject: String,
    /// File name to content.
    files: BTreeMap<String, Vec<u8>>,
}

/// A running client process and what it sends.
struct Running {
    child: Child,
    send: Send,
}

/// A new send from a random user to one or both others: one to three documents, mostly small,
/// some of several 64 KiB chunks (about 200 KiB).
fn plan(rng: &mut Rng, root: &Path, cycle: usize, index: usize) -> Send {
    let from = rng.below(3) as usize;
    let others: Vec<usize> = (0..3).filter(|&u| u != from).collect();
    let to = match rng.below(3) {
        0 => others.clone(),
        n => vec![others[n as usize - 1]],
    };
    let mut files = BTreeMap::new();
    for j in 0..1 + rng.below(3) as usize {
        let len = match rng.below(4) {
            0 => 200 * 1024 + rng.below(8 * 1024) as usize,
            1 => 64 * 1024 + rng.below(1024) as usize,
            _ => 1 + rng.below(20_000) as usize,
        };
        let name = format!("c{cycle:02}-s{index}-d{j}.bin");
        files.insert(name, content(len, (cycle * 16 + index * 4 + j) as u8));
    }
    let dir = root.join("outgoing");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    Send {
        from,
        to,
        subject: format!("crash cycle {cycle} send {index}"),
        files,
    }
}

fn spawn(root: &Path, homes: &[PathBuf], send: Send) -> Running {
    let to: Vec<&str> = send.to.iter().map(|&u| EMAILS[u]).collect();
    let mut args = vec![
        "send".to_owned(),
        "--to".to_owned(),
        to.join(","),
        "--subject".to_owned(),
        send.subject.clone(),
        "--body".to_owned(),
        format!("Body of {}.", send.subject),
        "--json".to_owned(),
    ];
    for name in send.files.keys() {
        args.push(root.join("outgoing").join(name).display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = attache(&homes[send.from], &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Running { child, send }
}

/// The message id a finished send printed, if it exited 0 with `{"id": …}`.
fn acknowledged(running: Running) -> (Send, Option<String>) {
    let Running { child, send } = running;
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return (send, None);
    }
    let value: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "send exited 0 but printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let id = value["id"].as_str().expect("an id").to_owned();
    (send, Some(id))
}

fn json(home: &Path, args: &[&str]) -> Value {
    let out = attache(home, args).output().unwrap();
    assert!(
        out.status.success(),
        "attache {args:?} failed after a restart ({:?}):\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Downloads message `id` as user `home` into a fresh folder and returns its files; panics
/// (naming the message) if the download fails: an entry that cannot be downloaded is half there.
fn download(home: &Path, scratch: &Path, id: &str, subject: &str) -> BTreeMap<String, Vec<u8>> {
    let dir = scratch.join(format!("dl-{id}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = attache(home, &["download", id, "--out", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "message {id} ({subject:?}) is listed but does not download ({:?}):\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        files.insert(name, std::fs::read(&path).unwrap());
    }
    std::fs::remove_dir_all(&dir).unwrap();
    files
}

/// What the test knows after each restart.
#[derive(Default)]
struct Ledger {
    /// Every send, by subject.
    sends: BTreeMap<String, Send>,
    /// Acknowledged message ids, by subject.
    acked: BTreeMap<String, String>,
    /// (user, message id) pairs already downloaded and compared.
    checked: BTreeSet<(usize, String)>,
    /// Sends never acknowledged that the server nevertheless committed (found whole).
    unacked_present: BTreeSet<String>,
    /// Acknowledged sends missing from an inbox, or with other content: subject to what is
    /// wrong.
    lost: BTreeMap<String, String>,
}

impl Ledger {
    /// Lists the newest `limit` inbox entries of `user`, checks that each downloads and holds
    /// exactly what was sent, and that every send of `expected` (subjects) acknowledged to
    /// `user` is listed.
    fn check_inbox(
        &mut self,
        homes: &[PathBuf],
        scratch: &Path,
        user: usize,
        limit: usize,
        expected: &[String],
    ) {
        let limit = limit.clamp(1, 200).to_string();
        let inbox = json(&homes[user], &["inbox", "--json", "--limit", &limit]);
        let listed: BTreeSet<&str> = inbox
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        for subject in expected {
            if let Some(id) = self.acked.get(subject) {
                if self.sends[subject].to.contains(&user) && !listed.contains(id.as_str()) {
                    self.lost.insert(
                        subject.clone(),
                        format!("{id} acknowledged but not in the inbox of {}", EMAILS[user]),
                    );
                }
            }
        }
        for entry in inbox.as_array().unwrap() {
            let id = entry["id"].as_str().unwrap().to_owned();
            if self.checked.contains(&(user, id.clone())) {
                continue;
            }
            let subject = entry["subject"].as_str().unwrap_or_default().to_owned();
            let send = self
                .sends
                .get(&subject)
                .unwrap_or_else(|| panic!("inbox entry {id} with unknown subject {subject:?}"));
            assert!(
                send.to.contains(&user),
                "{subject:?} is in the inbox of {}",
                EMAILS[user]
            );
            match self.acked.get(&subject) {
                Some(acked) => assert_eq!(acked, &id, "{subject:?} listed under another id"),
                None => {
                    self.unacked_present.insert(subject.clone());
                }
            }
            let got = download(&homes[user], scratch, &id, &subject);
            if got != send.files {
                self.lost.insert(
                    subject.clone(),
                    format!(
                        "{id} downloads as {:?}, sent {:?}",
                        got.iter().map(|(n, b)| (n, b.len())).collect::<Vec<_>>(),
                        send.files
                            .iter()
                            .map(|(n, b)| (n, b.len()))
                            .collect::<Vec<_>>()
                    ),
                );
            }
            self.checked.insert((user, id));
        }
    }

    /// Every acknowledged send is in each recipient's inbox (full listings).
    fn check_all_present(&mut self, homes: &[PathBuf]) {
        for (user, home) in homes.iter().enumerate() {
            let inbox = json(home, &["inbox", "--json", "--limit", "200"]);
            let listed: BTreeSet<&str> = inbox
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap())
                .collect();
            for (subject, id) in &self.acked {
                if !self.sends[subject].to.contains(&user) || listed.contains(id.as_str()) {
                    continue;
                }
                // A listing holds at most 200 entries: past that, ask for the message itself.
                let readable = listed.len() == 200
                    && attache(home, &["read", id, "--json"])
                        .output()
                        .unwrap()
                        .status
                        .success();
                if !readable {
                    self.lost.insert(
                        subject.clone(),
                        format!("{id} acknowledged but not in the inbox of {}", EMAILS[user]),
                    );
                }
            }
        }
    }
}

#[test]
fn acknowledged_sends_survive_sigkill_at_random_moments() {
    let started = Instant::now();
    let seed = std::env::var("ATTACHE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let cycles: usize = std::env::var("ATTACHE_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    println!("crash: seed {seed} (replay with ATTACHE_CRASH_SEED={seed}), {cycles} cycles");
    let mut rng = Rng(seed);

    let dir = temp_dir();
    let root = dir.path();
    let port = free_port();
    let mut server: Server = start_server_with(root, port, NO_LIMITS);

    // Three firm users, each may write to each.
    let users = firm_of_three(root, &server, ["ada", "ben", "cy"], EMAILS);
    let homes: Vec<PathBuf> = users.iter().map(|u| u.home.clone()).collect();
    let scratch = root.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();

    let mut ledger = Ledger::default();
    // One batch without a kill sets the window the kill moments are drawn from.
    let calibration = Instant::now();
    let batch: Vec<Running> = (0..CLIENTS)
        .map(|i| spawn(root, &homes, plan(&mut rng, root, 0, i)))
        .collect();
    for running in batch {
        let (send, id) = acknowledged(running);
        let id = id.unwrap_or_else(|| panic!("{:?} failed with the server up", send.subject));
        ledger.acked.insert(send.subject.clone(), id);
        ledger.sends.insert(send.subject.clone(), send);
    }
    let batch_time = calibration.elapsed();
    // Half again as long as a batch: most kills land mid-batch, some just after the last
    // acknowledgement (the moment a missing flush would show).
    let window = batch_time * 3 / 2;
    println!(
        "crash: {CLIENTS} concurrent sends take {} ms; kills land in 0..{} ms",
        batch_time.as_millis(),
        window.as_millis()
    );
    let first: Vec<String> = ledger.acked.keys().cloned().collect();
    for user in 0..3 {
        ledger.check_inbox(&homes, &scratch, user, 3 * CLIENTS, &first);
    }

    let (mut acked_in_cycles, mut killed_clients) = (0usize, 0usize);
    for cycle in 1..=cycles {
        let batch: Vec<Running> = (0..CLIENTS)
            .map(|i| spawn(root, &homes, plan(&mut rng, root, cycle, i)))
            .collect();
        let delay = Duration::from_millis(rng.below(window.as_millis() as u64));
        std::thread::sleep(delay);
        // SIGKILL (Server's drop kills the child with SIGKILL and reaps it).
        drop(server);
        let mut cycle_acked = Vec::new();
        for mut running in batch {
            if running.child.try_wait().unwrap().is_none() {
                let _ = running.child.kill();
                killed_clients += 1;
            }
            let (send, id) = acknowledged(running);
            if let Some(id) = id {
                ledger.acked.insert(send.subject.clone(), id);
                cycle_acked.push(send.subject.clone());
            }
            ledger.sends.insert(send.subject.clone(), send);
        }
        acked_in_cycles += cycle_acked.len();

        // The store must open cleanly on the same folder and port.
        server = start_server_with(root, port, NO_LIMITS);
        for user in 0..3 {
            ledger.check_inbox(&homes, &scratch, user, 3 * CLIENTS, &cycle_acked);
        }
        println!(
            "crash: cycle {cycle:2}: killed after {:4} ms, {}/{CLIENTS} acknowledged",
            delay.as_millis(),
            cycle_acked.len()
        );
    }

    // A last restart, then every acknowledged send must be listed for each of its recipients.
    drop(server);
    let server = start_server_with(root, port, NO_LIMITS);
    ledger.check_all_present(&homes);
    drop(server);

    let acked = ledger.acked.len();
    println!(
        "crash: {killed_clients} clients killed mid-send, {acked_in_cycles} sends acknowledged \
         during kill cycles, {} unacknowledged sends found whole, {} inbox entries downloaded \
         and compared, {:.1} s",
        ledger.unacked_present.len(),
        ledger.checked.len(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "crash: {cycles} cycles, {acked} acknowledged writes, {} lost",
        ledger.lost.len()
    );
    let lost: Vec<String> = ledger
        .lost
        .iter()
        .map(|(subject, what)| format!("{subject:?}: {what}"))
        .collect();
    assert!(lost.is_empty(), "lost:\n{}", lost.join("\n"));
    assert!(
        acked_in_cycles > 0,
        "no send was acknowledged during the kill cycles: the kills came too early"
    );
}
