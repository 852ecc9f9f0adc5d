//! Load generator for `benches/run.sh`: many concurrent clients of a running server, each a real
//! `attache::client::Client` over HTTPS, sealing and sending on its own thread.
//!
//! ```text
//! cargo bench --bench load -- send  HOMES CLIENTS SECONDS BODY_BYTES
//! cargo bench --bench load -- fill  HOMES TARGET_EMAIL COUNT CLIENTS
//! cargo bench --bench load -- inbox HOME RUNS LIMIT
//! ```
//!
//! `HOMES` is a folder of joined profiles (`u0`, `u1`, …, made by `run.sh` with `attache join`);
//! client `i` uses profile `u(i mod N)` and sends to the next user. The passphrase comes from
//! `ATTACHE_PASSPHRASE`. Every key file is unlocked and every session opened before the clock
//! starts. A send counts once the server acknowledged it, which it does only after the message
//! is flushed to disk. Prints one `key=value` line per figure for `run.sh` to collect.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use attache::client::{Client, NoProgress, Outgoing, Profile};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["send", homes, clients, seconds, body] => send(
            Path::new(homes),
            number(clients),
            Duration::from_secs(number(seconds) as u64),
            number(body),
        ),
        ["fill", homes, target, count, clients] => {
            fill(Path::new(homes), target, number(count), number(clients))
        }
        ["inbox", home, runs, limit] => inbox(Path::new(home), number(runs), number(limit)),
        [] => Ok(()), // `cargo bench` without arguments runs every bench; this one needs a server.
        _ => Err("usage: see the header of benches/load.rs".into()),
    };
    if let Err(e) = result {
        eprintln!("load: {e}");
        std::process::exit(1);
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn number(s: &str) -> usize {
    s.parse()
        .unwrap_or_else(|_| panic!("not a number: {s:?} (see benches/load.rs)"))
}

/// The profiles `u0`, `u1`, … in `homes`.
fn profiles(homes: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    while homes.join(format!("u{}", out.len())).is_dir() {
        out.push(homes.join(format!("u{}", out.len())));
    }
    if out.len() < 2 {
        return Err(format!("{} holds fewer than two profiles u0, u1", homes.display()).into());
    }
    Ok(out)
}

/// Unlocks each profile once, one after the other, so that the session and the pinned contacts
/// are cached before many threads share a profile.
fn warm_up(homes: &[PathBuf]) -> Result<()> {
    for home in homes {
        ready_client(home)?.0.contacts()?;
    }
    Ok(())
}

/// A client for `home`, unlocked and signed in.
fn ready_client(home: &Path) -> Result<(Client, String)> {
    let profile = Profile::load(home)?;
    let email = profile.config.email.clone();
    let client = Client::connect(
        profile,
        Box::new(|| {
            std::env::var("ATTACHE_PASSPHRASE")
                .map_err(|_| attache::client::ClientError::Profile("set ATTACHE_PASSPHRASE".into()))
        }),
    )?;
    client.identity()?;
    client.whoami()?;
    Ok((client, email))
}

/// Runs `clients` threads; thread `i` builds its state with `setup(i)` before the common start,
/// then calls `op` until it returns `false` or the deadline passes. Returns every latency.
fn run_clients<S>(
    clients: usize,
    deadline: Option<Duration>,
    setup: impl Fn(usize) -> Result<S> + Sync,
    op: impl Fn(&mut S, usize) -> Result<bool> + Sync,
) -> Result<(Vec<Duration>, Duration)> {
    let barrier = Barrier::new(clients + 1);
    let stop = Arc::new(AtomicBool::new(false));
    let mut latencies = Vec::new();
    let mut elapsed = Duration::ZERO;
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                let (barrier, stop, setup, op) = (&barrier, stop.clone(), &setup, &op);
                scope.spawn(move || -> Result<Vec<Duration>> {
                    let state = setup(i);
                    barrier.wait();
                    let mut state = state?;
                    let mut mine = Vec::new();
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let more = op(&mut state, n)?;
                        mine.push(t.elapsed());
                        n += 1;
                        if !more {
                            break;
                        }
                    }
                    Ok(mine)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        if let Some(d) = deadline {
            std::thread::sleep(d);
            stop.store(true, Ordering::Relaxed);
        }
        for h in handles {
            latencies.extend(h.join().map_err(|_| "a client thread panicked")??);
        }
        elapsed = start.elapsed();
        Ok(())
    })?;
    Ok((latencies, elapsed))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn report(prefix: &str, mut latencies: Vec<Duration>, elapsed: Duration) {
    latencies.sort();
    println!("{prefix}_count={}", latencies.len());
    println!(
        "{prefix}_per_second={:.1}",
        latencies.len() as f64 / elapsed.as_secs_f64()
    );
    for (name, p) in [("p50", 0.5), ("p99", 0.99), ("p999", 0.999)] {
        println!("{prefix}_{name}_ms={:.2}", percentile(&latencies, p));
    }
}

fn message(to: &str, body: usize) -> Outgoing {
    Outgoing {
        to: vec![to.to_owned()],
        subject: "Load".into(),
        body: "x".repeat(body),
        ..Outgoing::default()
    }
}

/// `clients` threads send `body`-byte messages for `duration`.
fn send(homes: &Path, clients: usize, duration: Duration, body: usize) -> Result<()> {
    let homes = profiles(homes)?;
    let emails: Vec<String> = homes
        .iter()
        .map(|h| Ok(Profile::load(h)?.config.email))
        .collect::<Result<_>>()?;
    warm_up(&homes)?;
    let (latencies, elapsed) = run_clients(
        clients,
        Some(duration),
        |i| {
            let (client, _) = ready_client(&homes[i % homes.len()])?;
            Ok((client, emails[(i + 1) % emails.len()].clone()))
        },
        |(client, to), _| {
            client.send(&message(to, body), &NoProgress)?;
            Ok(true)
        },
    )?;
    println!("clients={clients}");
    report("send", latencies, elapsed);
    Ok(())
}

/// Sends `count` messages to `target` from the other profiles, `clients` at a time.
fn fill(homes: &Path, target: &str, count: usize, clients: usize) -> Result<()> {
    let homes: Vec<PathBuf> = profiles(homes)?
        .into_iter()
        .filter(|h| Profile::load(h).is_ok_and(|p| p.config.email != target))
        .collect();
    warm_up(&homes)?;
    let per_client = count.div_ceil(clients);
    let (latencies, elapsed) = run_clients(
        clients,
        None,
        |i| Ok(ready_client(&homes[i % homes.len()])?.0),
        |client, n| {
            client.send(&message(target, 1024), &NoProgress)?;
            Ok(n + 1 < per_client)
        },
    )?;
    report("fill", latencies, elapsed);
    Ok(())
}

/// Lists the newest `limit` messages of `home`'s inbox `runs` times (each opened and checked).
fn inbox(home: &Path, runs: usize, limit: usize) -> Result<()> {
    let (latencies, elapsed) = run_clients(
        1,
        None,
        |_| Ok(ready_client(home)?.0),
        |client, n| {
            let listed = client.inbox(false, limit as u32)?;
            if listed.len() != limit {
                return Err(format!("listed {} messages, expected {limit}", listed.len()).into());
            }
            Ok(n + 1 < runs)
        },
    )?;
    report("inbox", latencies, elapsed);
    Ok(())
}
