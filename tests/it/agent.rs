//! The unlocked-key agent: one unlock per working session, then commands without the
//! passphrase; the agent ends on `stop`, on its idle period and on its maximum lifetime, and
//! only the profile's owner can reach it.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use attache::client::agent;

use crate::support::{User, free_port, identity, invite_url, start_server, temp_dir};

/// Runs the CLI as `user` with no passphrase anywhere: no `ATTACHE_PASSPHRASE`, no terminal.
fn without_passphrase(user: &User, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_attache"))
        .env("ATTACHE_HOME", &user.home)
        .env_remove("ATTACHE_PASSPHRASE")
        .env_remove("ATTACHE_KEY")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn one_unlock_serves_later_commands_until_the_agent_is_stopped() {
    let root = temp_dir();
    let root = root.path();
    let server = start_server(root, free_port());
    let ada = User::new(root, "ada");
    ada.ok(&[
        "join",
        server.bootstrap.as_deref().unwrap(),
        "--email",
        "ada@firm.example",
        "--cert-fingerprint",
        &server.certificate,
    ]);
    // Without an agent and without a passphrase, a command that needs the key cannot run.
    let bob = User::new(root, "bob");
    let invite = invite_url(&ada.ok(&["invite", "bob@client.example", "--role", "client"]));
    bob.ok(&["join", &invite, "--cert-fingerprint", &server.certificate]);
    let note = [
        "send",
        "--to",
        "bob@client.example",
        "--subject",
        "note",
        "--body",
        "hello",
    ];
    let locked = without_passphrase(&ada, &note);
    assert!(!locked.status.success(), "{}", text(&locked));
    assert!(text(&locked).contains("passphrase"), "{}", text(&locked));

    let started = ada.ok(&["agent", "start", "--idle", "5", "--max", "1"]);
    assert!(started.starts_with("unlocked: until "), "{started}");
    let socket = agent::socket_path(&ada.home);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the socket is the owner's only");
    }
    // Later commands need no passphrase: sealing and signing use the agent's key.
    let me = without_passphrase(&ada, &["whoami", "--json"]);
    assert!(me.status.success(), "{}", text(&me));
    let sent = without_passphrase(&ada, &note);
    assert!(sent.status.success(), "{}", text(&sent));
    let status = without_passphrase(&ada, &["agent", "status"]);
    assert!(text(&status).starts_with("unlocked: "), "{}", text(&status));
    // A second start reports the running agent instead of starting another.
    assert!(
        ada.ok(&["agent", "start"])
            .starts_with("already unlocked: ")
    );

    assert_eq!(
        ada.ok(&["agent", "stop"]).trim(),
        "locked: the agent ended and wiped the key"
    );
    assert!(!socket.exists(), "the socket is removed");
    let relocked = without_passphrase(&ada, &note);
    assert!(!relocked.status.success(), "{}", text(&relocked));
    assert_eq!(
        ada.ok(&["agent", "stop"]).trim(),
        "locked: no agent was running"
    );
}

/// Serves identity 7 from `dir` on a thread with the given periods.
fn serve_on_thread(dir: &Path, idle: Duration, max: Duration) -> std::thread::JoinHandle<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let dir = dir.to_owned();
    let handle = std::thread::spawn(move || {
        agent::serve(&dir, identity(7), idle, max, |_| ready_tx.send(()).unwrap()).unwrap();
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    handle
}

#[test]
fn the_agent_ends_after_its_idle_period_and_its_maximum_life() {
    let dir = temp_dir();
    let expected = identity(7).public().to_text();

    // Idle: used once within the period, then left alone.
    let handle = serve_on_thread(dir.path(), Duration::from_secs(2), Duration::from_secs(60));
    let status = agent::status(dir.path()).expect("a running agent reports its state");
    assert!(status.idle_until <= status.expires_at);
    let fetched = agent::fetch(dir.path()).expect("the agent hands out the key");
    assert_eq!(fetched.public().to_text(), expected);
    handle.join().unwrap();
    assert!(
        agent::fetch(dir.path()).is_none(),
        "ended after the idle period"
    );
    assert!(!agent::socket_path(dir.path()).exists());

    // Maximum life: kept busy, it still ends.
    let handle = serve_on_thread(dir.path(), Duration::from_secs(60), Duration::from_secs(2));
    let started = std::time::Instant::now();
    while !handle.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the agent outlived its maximum"
        );
        let _ = agent::fetch(dir.path());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        agent::fetch(dir.path()).is_none(),
        "ended at its maximum life"
    );

    // A stale socket left by a killed agent is replaced, not an obstacle.
    std::fs::write(agent::socket_path(dir.path()), b"").unwrap();
    let handle = serve_on_thread(dir.path(), Duration::from_secs(60), Duration::from_secs(60));
    assert!(agent::fetch(dir.path()).is_some());
    assert!(agent::stop(dir.path()));
    handle.join().unwrap();
}
