//! `attache agent start|status|stop`: the unlocked-key agent of the profile
//! ([`attache::client::agent`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use attache::client::Profile;
use attache::client::agent::{self, AgentStatus, DEFAULT_IDLE, DEFAULT_MAX, LONGEST_MAX};
use attache::wire::format_utc;
use clap::Subcommand;
use zeroize::Zeroizing;

/// Keeping the key unlocked for a working session.
#[derive(Subcommand, Debug)]
pub(super) enum AgentCommand {
    /// Unlock your key once (asks for the passphrase) and keep it unlocked in a background agent,
    /// so that later commands in this profile skip the passphrase and its scrypt second. The
    /// agent ends after `--idle` minutes without use, after `--max` hours, or on `agent stop`.
    Start {
        /// Minutes without use after which the agent ends.
        #[arg(long, default_value_t = DEFAULT_IDLE.as_secs() / 60, value_parser = clap::value_parser!(u64).range(1..=1440))]
        idle: u64,
        /// Hours after which the agent ends in any case (at most 24).
        #[arg(long, default_value_t = DEFAULT_MAX.as_secs() / 3600, value_parser = clap::value_parser!(u64).range(1..=24))]
        max: u64,
    },
    /// Whether an agent holds your key, and until when.
    Status,
    /// End the agent now: the key is wiped from its memory.
    Stop,
    /// (internal) The agent process itself: reads the keys from standard input.
    #[command(hide = true)]
    Serve {
        /// Idle minutes.
        #[arg(long)]
        idle: u64,
        /// Maximum hours.
        #[arg(long)]
        max: u64,
    },
}

pub(super) fn run(command: AgentCommand) -> Result<()> {
    let dir = super::messaging::profile_dir()?;
    match command {
        AgentCommand::Start { idle, max } => {
            let profile = Profile::load(&dir)?;
            if let Some(s) = agent::status(&dir) {
                println!("already unlocked: {}", describe(&s));
                return Ok(());
            }
            let passphrase = Zeroizing::new(super::passphrase("passphrase for your key file: ")?);
            let identity = profile.unlock(&passphrase)?;
            let mut child = Process::new(std::env::current_exe().context("cannot find attache")?)
                .args([
                    "agent",
                    "serve",
                    "--idle",
                    &idle.to_string(),
                    "--max",
                    &max.to_string(),
                ])
                .env("ATTACHE_HOME", &dir)
                .env_remove("ATTACHE_PASSPHRASE")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .process_group_if_unix()
                .spawn()
                .context("cannot start the agent")?;
            {
                let mut stdin = child.stdin.take().context("no pipe to the agent")?;
                stdin
                    .write_all(&agent::handoff(&identity)[..])
                    .context("cannot hand the key to the agent")?;
            }
            let stdout = child.stdout.take().context("no pipe from the agent")?;
            let mut line = String::new();
            BufReader::new(stdout)
                .read_line(&mut line)
                .context("the agent did not start")?;
            if line.trim() != "ready" {
                bail!("the agent did not start");
            }
            match agent::status(&dir) {
                Some(s) => println!("unlocked: {}", describe(&s)),
                None => bail!("the agent started but does not answer"),
            }
            Ok(())
        }
        AgentCommand::Status => {
            match agent::status(&dir) {
                Some(s) => println!("unlocked: {}", describe(&s)),
                None => println!("locked: no agent runs for {}", dir.display()),
            }
            Ok(())
        }
        AgentCommand::Stop => {
            if agent::stop(&dir) {
                println!("locked: the agent ended and wiped the key");
            } else {
                println!("locked: no agent was running");
            }
            Ok(())
        }
        AgentCommand::Serve { idle, max } => {
            let mut secret = Zeroizing::new([0u8; 64]);
            std::io::stdin()
                .read_exact(&mut secret[..])
                .context("the agent reads its key from standard input")?;
            let identity = agent::from_handoff(&secret)?;
            drop(secret);
            let max = Duration::from_secs(max.saturating_mul(3600)).min(LONGEST_MAX);
            agent::serve(
                &dir,
                identity,
                Duration::from_secs(idle.saturating_mul(60)),
                max,
                |_| {
                    let mut out = std::io::stdout();
                    let _ = writeln!(out, "ready");
                    let _ = out.flush();
                },
            )?;
            Ok(())
        }
    }
}

fn describe(s: &AgentStatus) -> String {
    format!(
        "until {} at the latest, or {} if unused",
        format_utc(s.expires_at),
        format_utc(s.idle_until)
    )
}

/// Starts the agent in its own process group, so that a Ctrl-C in the terminal that started it
/// does not end it.
trait ProcessGroup {
    fn process_group_if_unix(&mut self) -> &mut Self;
}

impl ProcessGroup for Process {
    fn process_group_if_unix(&mut self) -> &mut Self {
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(self, 0);
        self
    }
}
