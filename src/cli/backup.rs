//! `attache backup`: asks the server running on a data folder for a consistent snapshot, over
//! its control socket, and reports what the snapshot holds. Run it as the server's user.

use std::path::PathBuf;

use anyhow::Result;
use attache::server::control::{BackupSummary, request_backup};

/// Settings of `attache backup`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "The server pauses writes while it copies the database (the pause is \
reported; requests wait, none fails) and links the documents' files into the snapshot. Uploads \
in progress are left out. The keys folder is not included: back it up apart. Restore: stop the \
server, put the snapshot in place of the data folder, start it (docs/OPERATIONS.md)."
)]
pub(crate) struct BackupArgs {
    /// The data folder of the running server.
    #[arg(long, env = "ATTACHE_DATA", default_value = "data", value_name = "DIR")]
    data: PathBuf,
    /// Where to write the snapshot, a folder that must not exist yet [default:
    /// DATA/backups/<UTC time>]. Written by the server process: it must be allowed to write
    /// there (with deploy/attache.service, add it to ReadWritePaths).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `attache backup`.
pub(crate) fn run(args: BackupArgs) -> Result<()> {
    let summary = request_backup(&args.data, args.out.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(())
}

fn print_summary(s: &BackupSummary) {
    let ms = |micros: u64| micros as f64 / 1000.0;
    println!("backup written to {}", s.path);
    println!(
        "  {} accounts, {} messages, {} documents, {} records",
        s.accounts, s.messages, s.documents, s.records
    );
    println!(
        "  {} bytes: database {}, document files {} ({} linked, {} copied)",
        s.database_bytes + s.file_bytes,
        s.database_bytes,
        s.file_bytes,
        s.files_linked,
        s.files_copied
    );
    if s.uploads_left_out > 0 {
        println!(
            "  {} uploads in progress left out (they start over after a restore)",
            s.uploads_left_out
        );
    }
    println!(
        "  writes paused {:.1} ms (after {:.1} ms waiting for requests in flight)",
        ms(s.pause_micros),
        ms(s.wait_micros)
    );
}
