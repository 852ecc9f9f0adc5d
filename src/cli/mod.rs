//! The `attache` command line: argument parsing, passphrase prompts, files, and turning errors
//! into messages and exit codes. The only place that uses `anyhow`.
//!
//! Exit codes: 0 success; 1 any other failure; 2 usage error; 3 the input was refused as
//! forged, tampered, or not for this identity (an evidence bundle, statement, grant or audit log
//! that does not verify included); 4 wrong passphrase; 5 a pinned contact key, server
//! certificate or server audit key changed (verify it again before sending); 6 access ended
//! (a co-counsel grant expired or was revoked, or a signature request's deadline passed).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use attache::container::{ContainerError, open_file, seal_file};
use attache::crypto::{
    CHUNK_SIZE, DEFAULT_WORK_FACTOR, Identity, ItemError, KeyFileError, KeyPackageError, Metadata,
    Parallelism, PublicKeys, open_key_file, seal_key_file,
};
use clap::{Parser, Subcommand, ValueEnum};

mod agent;
#[cfg(feature = "server")]
mod backup;
mod legal;
mod messaging;
#[cfg(feature = "server")]
mod serve;
mod time;

/// End-to-end encrypted document and message exchange for law firms.
#[derive(Parser, Debug)]
#[command(
    name = "attache",
    version,
    about,
    after_help = "Exit codes: 0 success; 1 failure; 2 usage error; 3 input refused as forged, \
                  tampered, or not for you (evidence, signatures, grants or an audit log that \
                  do not verify); 4 wrong passphrase; 5 a contact's key, the server's \
                  certificate or its audit key changed; 6 access ended (a grant expired or \
                  was revoked, or a signature deadline passed)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server.
    #[cfg(feature = "server")]
    // Boxed: the server's many settings would make every other command's value as large.
    Serve(Box<serve::ServeArgs>),
    /// Ask the running server for a consistent backup of its data folder.
    #[cfg(feature = "server")]
    Backup(backup::BackupArgs),
    /// Messaging with an Attache server.
    #[command(flatten)]
    Messaging(messaging::Command),
    /// Matters, signatures, grants and the audit log.
    #[command(flatten)]
    Legal(legal::Command),
    /// Keep your key unlocked for a working session (an agent, like ssh-agent).
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Create or show your identity (key file).
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// Seal a file for one or more readers into an Attache sealed file.
    Seal {
        /// Your key file (the sender's identity; it signs the seal).
        #[arg(long, env = "ATTACHE_KEY", default_value = "attache-key.age")]
        key: PathBuf,
        /// A reader's public key (`attache-public-v1:…`); repeat for several readers. You are
        /// always added as a reader yourself.
        #[arg(long = "to", value_name = "PUBLIC_KEY")]
        to: Vec<String>,
        /// Where to write the sealed file (`-` for standard output).
        #[arg(short, long)]
        output: PathBuf,
        /// Threads to use.
        #[arg(long, value_enum, default_value_t = Threads::All)]
        threads: Threads,
        /// The file to seal, or `-` for standard input.
        input: PathBuf,
    },
    /// Check and open an Attache sealed file.
    Open {
        /// Your key file.
        #[arg(long, env = "ATTACHE_KEY", default_value = "attache-key.age")]
        key: PathBuf,
        /// The sender's public key: refuse the file unless this key sealed it.
        #[arg(long, value_name = "PUBLIC_KEY")]
        from: Option<String>,
        /// Where to write the content. Written to a temporary file first and renamed only once
        /// every chunk and the sender's seal have been checked; `-` streams it to standard
        /// output instead, each chunk once it has been checked.
        #[arg(short, long)]
        output: PathBuf,
        /// Threads to use.
        #[arg(long, value_enum, default_value_t = Threads::All)]
        threads: Threads,
        /// The sealed file.
        input: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum IdentityCommand {
    /// Create a new identity and write its passphrase-protected key file.
    New {
        /// Where to write the key file (refuses to overwrite).
        #[arg(long, env = "ATTACHE_KEY", default_value = "attache-key.age")]
        key: PathBuf,
        /// scrypt work factor (log2 N) protecting the key file; 18 takes about a second.
        #[arg(long, default_value_t = DEFAULT_WORK_FACTOR, value_parser = clap::value_parser!(u8).range(10..=22))]
        work_factor: u8,
    },
    /// Show the public key and fingerprint (safety number) of a key file.
    Show {
        /// The key file.
        #[arg(long, env = "ATTACHE_KEY", default_value = "attache-key.age")]
        key: PathBuf,
        /// Print only the public key text, for scripts.
        #[arg(long)]
        public: bool,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Threads {
    /// The calling thread only.
    One,
    /// Every core.
    All,
}

impl From<Threads> for Parallelism {
    fn from(t: Threads) -> Self {
        match t {
            Threads::One => Parallelism::One,
            Threads::All => Parallelism::All,
        }
    }
}

/// Runs the command line and maps the outcome to an exit code.
pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("attache: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        #[cfg(feature = "server")]
        Command::Serve(args) => serve::run(*args),
        #[cfg(feature = "server")]
        Command::Backup(args) => backup::run(args),
        Command::Messaging(command) => messaging::run(command),
        Command::Legal(command) => legal::run(command),
        Command::Agent(command) => agent::run(command),
        Command::Identity(IdentityCommand::New { key, work_factor }) => {
            identity_new(&key, work_factor)
        }
        Command::Identity(IdentityCommand::Show { key, public }) => {
            let identity = unlock(&key)?;
            if public {
                println!("{}", identity.public().to_text());
            } else {
                print_identity(&identity);
            }
            Ok(())
        }
        Command::Seal {
            key,
            to,
            output,
            threads,
            input,
        } => seal(&key, &to, &output, threads, &input),
        Command::Open {
            key,
            from,
            output,
            threads,
            input,
        } => open(&key, from.as_deref(), &output, threads, &input),
    }
}

fn identity_new(key: &Path, work_factor: u8) -> Result<()> {
    if key.exists() {
        bail!(
            "{} already exists; choose another path with --key",
            key.display()
        );
    }
    let passphrase = new_passphrase()?;
    let identity = Identity::generate()?;
    let file = seal_key_file(&identity, &passphrase, work_factor)?;
    let mut out = create_private(key, true)?;
    out.write_all(&file)?;
    out.sync_all()?;
    eprintln!("wrote {}", key.display());
    print_identity(&identity);
    Ok(())
}

fn print_identity(identity: &Identity) {
    println!("public key:  {}", identity.public().to_text());
    println!("fingerprint: {}", identity.fingerprint());
    println!("age recipient: {}", identity.public().age_recipient());
}

fn seal(key: &Path, to: &[String], output: &Path, threads: Threads, input: &Path) -> Result<()> {
    let identity = unlock(key)?;
    let mut readers = vec![*identity.public()];
    for text in to {
        let reader = PublicKeys::parse_text(text).with_context(|| format!("--to {text:.40}"))?;
        if !readers.contains(&reader) {
            readers.push(reader);
        }
    }
    let metadata = Metadata {
        file_name: input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|_| input != Path::new("-"))
            .unwrap_or_default(),
        readers: readers.iter().map(PublicKeys::fingerprint).collect(),
        ..Metadata::default()
    };
    let size = write_output(output, |out| {
        let sealed = if input == Path::new("-") {
            seal_file(
                &identity,
                &metadata,
                &readers,
                io::stdin().lock(),
                out,
                threads.into(),
            )?
        } else {
            let file =
                File::open(input).with_context(|| format!("cannot read {}", input.display()))?;
            seal_file(&identity, &metadata, &readers, file, out, threads.into())?
        };
        Ok(sealed.true_size)
    })?;
    eprintln!(
        "sealed {size} bytes for {} reader(s) into {}",
        readers.len(),
        output.display()
    );
    Ok(())
}

fn open(
    key: &Path,
    from: Option<&str>,
    output: &Path,
    threads: Threads,
    input: &Path,
) -> Result<()> {
    let identity = unlock(key)?;
    let expected = from
        .map(|t| PublicKeys::parse_text(t).context("--from"))
        .transpose()?;
    let file = File::open(input).with_context(|| format!("cannot read {}", input.display()))?;
    let opened = write_output(output, |out| {
        Ok(open_file(
            io::BufReader::new(file),
            &identity,
            expected.as_ref(),
            out,
            threads.into(),
        )?)
    })?;
    let name = &opened.metadata.file_name;
    let shown = if name.is_empty() {
        String::new()
    } else {
        format!(" ({name})")
    };
    eprintln!(
        "opened {} bytes{shown} into {}",
        opened.written,
        output.display()
    );
    if expected.is_some() {
        eprintln!("sealed by the expected sender");
    } else {
        eprintln!(
            "sealed by Ed25519 key {}: compare it with the sender's public key, or pass --from",
            attache::wire::to_hex(&opened.signer_ed25519)
        );
    }
    Ok(())
}

/// Runs `write` against `output`: standard output for `-`; otherwise a private temporary file
/// beside `output`, flushed to disk and renamed into place only if `write` succeeds (removed
/// if it fails). The buffer is one chunk long, so chunk-sized writes go straight through
/// instead of being copied.
fn write_output<T>(output: &Path, write: impl FnOnce(&mut dyn Write) -> Result<T>) -> Result<T> {
    if output == Path::new("-") {
        let mut out = io::BufWriter::with_capacity(CHUNK_SIZE, io::stdout().lock());
        let value = write(&mut out)?;
        out.flush()?;
        return Ok(value);
    }
    let partial = partial_path(output);
    let result = (|| {
        let file = create_private(&partial, false)?;
        let mut out = io::BufWriter::with_capacity(CHUNK_SIZE, file);
        let value = write(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(value)
    })();
    finish(&partial, output, result)
}

/// Renames the partial output into place on success, removes it on failure.
fn finish<T>(partial: &Path, output: &Path, result: Result<T>) -> Result<T> {
    match result {
        Ok(value) => {
            fs::rename(partial, output)
                .with_context(|| format!("cannot move the result to {}", output.display()))?;
            Ok(value)
        }
        Err(e) => {
            let _ = fs::remove_file(partial);
            Err(e)
        }
    }
}

fn partial_path(output: &Path) -> PathBuf {
    let mut name = output
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".partial-{}", std::process::id()));
    output.with_file_name(name)
}

/// Creates a file readable only by its owner.
fn create_private(path: &Path, create_new: bool) -> Result<File> {
    let mut options = OpenOptions::new();
    options.write(true);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

fn unlock(key: &Path) -> Result<Identity> {
    let file = fs::read(key).with_context(|| {
        format!(
            "cannot read key file {} (create one with `attache identity new`)",
            key.display()
        )
    })?;
    let passphrase = passphrase("passphrase for the key file: ")?;
    Ok(open_key_file(&file, &passphrase)?)
}

fn passphrase(prompt: &str) -> Result<String> {
    if let Ok(p) = std::env::var("ATTACHE_PASSPHRASE") {
        return Ok(p);
    }
    rpassword::prompt_password(prompt)
        .context("cannot read a passphrase from the terminal (set ATTACHE_PASSPHRASE for scripts)")
}

fn new_passphrase() -> Result<String> {
    if let Ok(p) = std::env::var("ATTACHE_PASSPHRASE") {
        return Ok(p);
    }
    let first = passphrase("new passphrase: ")?;
    let second = passphrase("repeat the passphrase: ")?;
    if first != second {
        bail!("the passphrases differ");
    }
    Ok(first)
}

fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(code) = messaging::exit_code(cause).or_else(|| legal::exit_code(cause)) {
            return code;
        }
        if let Some(k) = cause.downcast_ref::<KeyFileError>() {
            return if *k == KeyFileError::WrongPassphrase {
                4
            } else {
                1
            };
        }
        if cause.downcast_ref::<KeyPackageError>().is_some() {
            return 3;
        }
        if let Some(c) = cause.downcast_ref::<ContainerError>() {
            return match c {
                ContainerError::Io(_) => 1,
                ContainerError::Item(ItemError::Io(_)) => 1,
                _ => 3,
            };
        }
        if let Some(i) = cause.downcast_ref::<ItemError>() {
            return if matches!(i, ItemError::Io(_)) { 1 } else { 3 };
        }
    }
    1
}
