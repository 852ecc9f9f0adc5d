//! The legal-workflow commands: matters, signature requests and evidence, co-counsel grants and
//! the audit log. A thin layer over [`attache::client`]; `verify-evidence` needs no profile and
//! no server (it runs [`attache::crypto::evidence::verify`] on the file alone).

use std::fs::File;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use attache::client::{
    AuditFilter, ClientError, ExportReport, GrantInfo, MatterInfo, SignAnswer, SignPrompt,
    SignatureAsk,
};
use attache::crypto::Intent;
use attache::crypto::audit::server_key_fingerprint;
use attache::crypto::evidence::{
    self, DigestWriter, EvidenceError, EvidenceReport, MAX_BUNDLE_LEN,
};
use attache::wire::api::{Grant, MatterStatus, SignatureRequest, SignatureStatus};
use attache::wire::{format_utc, to_hex};

use super::messaging::{Bar, connect, format_size, print_id, print_json, with_hint};
use super::time::parse_rfc3339;

/// Legal-workflow commands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum Command {
    /// Matters: create, list, close, hold, release, export.
    #[command(subcommand)]
    Matter(MatterCommand),
    /// Send a document to someone for signature by a deadline; prints the request id.
    RequestSignature {
        /// The signer's email.
        #[arg(long = "to", value_name = "EMAIL")]
        to: String,
        /// The deadline, RFC 3339 (e.g. 2026-12-01T17:00:00-05:00).
        #[arg(long, value_parser = parse_rfc3339, value_name = "RFC3339")]
        deadline: i64,
        /// The matter (see `attache matter list`).
        #[arg(long, value_name = "ID")]
        matter: Option<String>,
        /// A note to the signer (sealed; the server never sees it).
        #[arg(long, default_value = "")]
        note: String,
        /// The document to sign.
        file: PathBuf,
        /// Print the request as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List signature requests to you and by you.
    Signatures {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign a document you were asked to sign: shows its SHA-256 and asks to confirm.
    Sign {
        /// The request id (`attache signatures`).
        id: String,
        /// Your typed name (default: your account's display name).
        #[arg(long)]
        name: Option<String>,
        /// A note to the requester.
        #[arg(long, default_value = "")]
        note: String,
        /// Sign without asking (after checking the SHA-256 some other way).
        #[arg(long)]
        yes: bool,
    },
    /// Decline to sign.
    Decline {
        /// The request id.
        id: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
        /// Your typed name (default: your account's display name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Write the evidence bundle of an answered request to a file.
    Evidence {
        /// The request id.
        id: String,
        /// Where to write the bundle.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Check an evidence bundle offline (no profile, no server) and say what it proves.
    VerifyEvidence {
        /// The bundle.
        file: PathBuf,
        /// The document: check that it is the one signed.
        #[arg(long, value_name = "PATH")]
        document: Option<PathBuf>,
    },
    /// Give co-counsel access to a document, or a message with its documents, until a time.
    Share {
        /// A document (item) id or a message id.
        item: String,
        /// The co-counsel's email.
        #[arg(long = "with", value_name = "EMAIL")]
        with: String,
        /// When access ends, RFC 3339.
        #[arg(long, value_parser = parse_rfc3339, value_name = "RFC3339")]
        until: i64,
        /// The matter (default: the shared message's).
        #[arg(long, value_name = "ID")]
        matter: Option<String>,
        /// Print the grant as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List grants by you and to you, each statement's signature checked.
    Grants {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a grant: access ends now.
    Revoke {
        /// The grant id.
        grant: String,
    },
    /// List the audit log (your matters, or your items), or verify its chain.
    Audit {
        /// One matter's entries (its own hash chain).
        #[arg(long, value_name = "ID", conflicts_with = "item")]
        matter: Option<String>,
        /// The entries about one item.
        #[arg(long, value_name = "ID")]
        item: Option<String>,
        /// Verify the chain and the server's signed checkpoints; report the first broken link.
        #[arg(long, conflicts_with = "item")]
        verify: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Subcommand, Debug)]
pub(crate) enum MatterCommand {
    /// Create a matter (its name is sealed to you); prints its id.
    Create {
        /// The matter's name.
        name: String,
        /// Print the matter as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List your matters (admins: all).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Close a matter: its content is deleted after the retention period unless held.
    Close {
        /// The matter id.
        id: String,
        /// Days to keep its content (default: the firm's setting).
        #[arg(long, value_name = "N")]
        retain_days: Option<u32>,
    },
    /// Set a legal hold: nothing of the matter is deleted until it is released.
    Hold {
        /// The matter id.
        id: String,
    },
    /// Release a legal hold.
    Release {
        /// The matter id.
        id: String,
    },
    /// Export a matter: documents (decrypted and checked), the thread and the audit log.
    Export {
        /// The matter id.
        id: String,
        /// The folder to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Write each document, the thread and the summary as standard age files to your own
        /// key instead of in the clear (`age -d -i` with your key opens them).
        #[arg(long)]
        age: bool,
    },
}

/// Runs a legal-workflow command.
pub(crate) fn run(command: Command) -> Result<()> {
    run_inner(command).map_err(|e| match e.downcast::<ClientError>() {
        Ok(client) => with_hint(client),
        Err(other) => other,
    })
}

/// Exit code 3 for a bundle or log that does not verify offline.
pub(crate) fn exit_code(cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    cause.downcast_ref::<EvidenceError>().map(|_| 3)
}

fn run_inner(command: Command) -> Result<()> {
    match command {
        Command::Matter(m) => matter(m),
        Command::RequestSignature {
            to,
            deadline,
            matter,
            note,
            file,
            json,
        } => {
            if !file.is_file() {
                bail!("{} is not a file", file.display());
            }
            let client = connect()?;
            let progress = Bar::new(!json);
            let request = client.request_signature(
                &SignatureAsk {
                    signer: to,
                    deadline,
                    matter,
                    note,
                    file,
                },
                &progress,
            )?;
            if json {
                return print_json(&request);
            }
            println!("{}", request.id);
            eprintln!(
                "asked {} to sign by {}; the document went to them as message {}",
                request.signer,
                format_utc(request.deadline),
                request.message
            );
            Ok(())
        }
        Command::Signatures { json } => {
            let client = connect()?;
            let requests = client.signatures()?;
            if json {
                return print_json(&requests);
            }
            if requests.is_empty() {
                eprintln!("no signature requests");
            }
            let me = client.profile().config.email.clone();
            for r in &requests {
                print_request(r, &me);
            }
            Ok(())
        }
        Command::Sign {
            id,
            name,
            note,
            yes,
        } => answer(&id, Intent::Sign, name, note, yes),
        Command::Decline { id, reason, name } => answer(&id, Intent::Decline, name, reason, true),
        Command::Evidence { id, out } => {
            let report = connect()?.evidence(&id, &out)?;
            eprintln!("wrote {}", out.display());
            print_report(&report, None);
            Ok(())
        }
        Command::VerifyEvidence { file, document } => verify_evidence(&file, document.as_deref()),
        Command::Share {
            item,
            with,
            until,
            matter,
            json,
        } => {
            let grant = connect()?.share(&item, &with, until, matter.as_deref())?;
            if json {
                return print_json(&grant);
            }
            println!("{}", grant.id);
            eprintln!(
                "{} may read {} item(s) until {}",
                grant.grantee,
                grant.items.len(),
                format_utc(grant.until)
            );
            Ok(())
        }
        Command::Grants { json } => {
            let grants = connect()?.grants()?;
            if json {
                return print_json(&grants);
            }
            if grants.is_empty() {
                eprintln!("no grants");
            }
            for g in &grants {
                print_grant(g);
            }
            Ok(())
        }
        Command::Revoke { grant } => {
            let g: Grant = connect()?.revoke_grant(&grant)?;
            println!(
                "revoked {}: {} can no longer read its {} item(s)",
                g.id,
                g.grantee,
                g.items.len()
            );
            Ok(())
        }
        Command::Audit {
            matter,
            item,
            verify,
            json,
        } => audit(matter.as_deref(), item.as_deref(), verify, json),
    }
}

fn matter(command: MatterCommand) -> Result<()> {
    let client = connect()?;
    match command {
        MatterCommand::Create { name, json } => {
            let m = client.create_matter(&name)?;
            if json {
                return print_json(&m);
            }
            print_id(&m.id, false)
        }
        MatterCommand::List { json } => {
            let matters = client.matters()?;
            if json {
                return print_json(&matters);
            }
            if matters.is_empty() {
                eprintln!("no matters");
            }
            for m in &matters {
                print_matter(m);
            }
            Ok(())
        }
        MatterCommand::Close { id, retain_days } => {
            let m = client.close_matter(&id, retain_days)?;
            match (m.delete_after, m.hold) {
                (Some(t), false) => println!(
                    "closed {}: its content will be deleted after {}",
                    m.id,
                    format_utc(t)
                ),
                (Some(t), true) => println!(
                    "closed {}: deletion after {} is suspended by a legal hold",
                    m.id,
                    format_utc(t)
                ),
                (None, _) => println!("closed {}", m.id),
            }
            Ok(())
        }
        MatterCommand::Hold { id } => {
            let m = client.hold_matter(&id, true)?;
            println!("legal hold set on {}: nothing of it will be deleted", m.id);
            Ok(())
        }
        MatterCommand::Release { id } => {
            let m = client.hold_matter(&id, false)?;
            match m.delete_after {
                Some(t) if m.status == MatterStatus::Closed => println!(
                    "legal hold released on {}: its content will be deleted after {}",
                    m.id,
                    format_utc(t)
                ),
                _ => println!("legal hold released on {}", m.id),
            }
            Ok(())
        }
        MatterCommand::Export { id, out, age } => {
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let progress = Bar::new(true);
            let report = client.export_matter(&id, &out, age, &progress)?;
            print_export(&report);
            if let Some(f) = report.failures.iter().find(|f| f.what == "audit") {
                bail!(
                    "the matter's audit log was saved but did not verify: {}",
                    f.reason
                );
            }
            Ok(())
        }
    }
}

fn answer(id: &str, intent: Intent, name: Option<String>, note: String, yes: bool) -> Result<()> {
    let client = connect()?;
    let typed_name = match name {
        Some(n) => n,
        None => {
            let me = client.whoami()?;
            if me.name.is_empty() {
                me.email
            } else {
                me.name
            }
        }
    };
    let confirm = |p: &SignPrompt<'_>| -> Result<bool, ClientError> {
        let verb = match p.intent {
            Intent::Sign => "sign",
            Intent::Decline => "decline",
        };
        eprintln!("document:  {} ({})", p.file_name, format_size(p.size));
        eprintln!("SHA-256:   {}", to_hex(&p.sha256));
        eprintln!(
            "requested by {}, deadline {}",
            p.request.requester,
            format_utc(p.request.deadline)
        );
        if yes {
            return Ok(true);
        }
        if !std::io::stdin().is_terminal() {
            return Err(ClientError::Invalid(
                "confirmation needed: run this in a terminal, or pass --yes once you have \
                 checked the SHA-256 above"
                    .into(),
            ));
        }
        eprint!("{verb} this document as {typed_name:?}? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| ClientError::Invalid(format!("cannot read the answer: {e}")))?;
        Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
    };
    let answer = SignAnswer {
        intent,
        typed_name: typed_name.clone(),
        note,
    };
    let r = client.answer_signature(id, &answer, &confirm)?;
    match intent {
        Intent::Sign => println!("signed request {} as {typed_name:?}", r.id),
        Intent::Decline => println!("declined request {}", r.id),
    }
    Ok(())
}

fn verify_evidence(file: &Path, document: Option<&Path>) -> Result<()> {
    let bytes = read_bounded(file, MAX_BUNDLE_LEN)?;
    let digest = match document {
        Some(path) => {
            let f = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
            Some(
                DigestWriter::digest_of(std::io::BufReader::with_capacity(1 << 20, f))
                    .with_context(|| format!("cannot read {}", path.display()))?,
            )
        }
        None => None,
    };
    let report = evidence::verify(&bytes, digest)
        .map_err(|e| anyhow::Error::new(e).context("the evidence does not verify"))?;
    println!("evidence verified: every check passed");
    print_report(&report, document);
    Ok(())
}

/// Reads at most `max` bytes of `path`; more is an error (before parsing).
fn read_bounded(path: &Path, max: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() > max {
        return Err(anyhow::Error::new(EvidenceError::Format(format!(
            "{} is larger than an evidence bundle may be ({max} bytes)",
            path.display()
        )))
        .context("the evidence does not verify"));
    }
    Ok(bytes)
}

fn audit(matter: Option<&str>, item: Option<&str>, verify: bool, json: bool) -> Result<()> {
    let client = connect()?;
    if verify {
        let (view, report) = client.verify_audit(matter)?;
        let key = server_key(&view.log.server_key);
        if json {
            return print_json(&serde_json::json!({
                "verified": true,
                "entries": report.entries,
                "checkpoints": report.checkpoints,
                "covered": report.covered,
                "after": report.after,
                "latest_checkpoint_at": report.latest_checkpoint_at,
                "server_key": key,
            }));
        }
        println!(
            "audit log verified: {} entries, chain intact",
            report.entries
        );
        match report.latest_checkpoint_at {
            Some(at) => println!(
                "{} covered by signed checkpoints (latest {}), {} after the last one",
                report.covered,
                format_utc(at),
                report.after
            ),
            None => println!("no signed checkpoint covers these entries yet"),
        }
        println!("server audit key: {key}");
        return Ok(());
    }
    let filter = match (matter, item) {
        (Some(m), _) => AuditFilter::Matter(m),
        (None, Some(i)) => AuditFilter::Item(i),
        (None, None) => AuditFilter::All,
    };
    let view = client.audit(filter)?;
    if json {
        let entries: Vec<serde_json::Value> = view
            .entries
            .iter()
            .map(|e| serde_json::to_value(e).unwrap_or_default())
            .collect();
        return print_json(&serde_json::json!({
            "entries": entries,
            "checkpoints": view.log.checkpoints.len(),
            "server_key": server_key(&view.log.server_key),
        }));
    }
    if view.entries.is_empty() {
        eprintln!("no entries");
    }
    for e in &view.entries {
        let addr = if e.addr.is_empty() { "-" } else { &e.addr };
        println!(
            "{:>6}  {}  {}  {}  {}  {}",
            e.seq,
            format_utc(e.at),
            e.actor,
            addr,
            e.action,
            e.object
        );
    }
    Ok(())
}

/// The server key's fingerprint, or what is wrong with it.
fn server_key(b64: &str) -> String {
    use base64::Engine;
    match base64::engine::general_purpose::STANDARD
        .decode(b64)
        .ok()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
    {
        Some(k) => server_key_fingerprint(&k),
        None => "(malformed)".into(),
    }
}

fn print_matter(m: &MatterInfo) {
    let status = match m.status {
        MatterStatus::Open => "open".to_owned(),
        MatterStatus::Closed => match m.delete_after {
            Some(t) => format!("closed, deleted after {}", format_utc(t)),
            None => "closed".to_owned(),
        },
        MatterStatus::Deleted => match m.deleted_at {
            Some(t) => format!("deleted {}", format_utc(t)),
            None => "deleted".to_owned(),
        },
    };
    let hold = if m.hold { ", LEGAL HOLD" } else { "" };
    let name = m.name.as_deref().unwrap_or("(name sealed to its owner)");
    println!(
        "{}  {}  {}{hold}  {}  {name}",
        m.id,
        format_utc(m.created_at),
        status,
        m.owner
    );
}

fn print_request(r: &SignatureRequest, me: &str) {
    let status = match r.status {
        SignatureStatus::Pending => "pending",
        SignatureStatus::Signed => "signed",
        SignatureStatus::Declined => "declined",
        SignatureStatus::Expired => "expired",
    };
    let who = if r.signer == me {
        format!("from {}", r.requester)
    } else {
        format!("to {}", r.signer)
    };
    let answered = r
        .answered_at
        .map(|t| format!(", answered {}", format_utc(t)))
        .unwrap_or_default();
    println!(
        "{}  {status:<8}  {who}  deadline {}{answered}  document {}",
        r.id,
        format_utc(r.deadline),
        r.document
    );
}

fn print_grant(g: &GrantInfo) {
    let status = match g.grant.status {
        attache::wire::api::GrantStatus::Active => "active",
        attache::wire::api::GrantStatus::Expired => "expired",
        attache::wire::api::GrantStatus::Revoked => "revoked",
    };
    let check = match &g.problem {
        None => "signature verified".to_owned(),
        Some(p) => format!("NOT VERIFIED: {p}"),
    };
    println!(
        "{}  {status:<7}  {} -> {}  until {}  {} item(s)  {check}",
        g.grant.id,
        g.grant.grantor,
        g.grant.grantee,
        format_utc(g.grant.until),
        g.grant.items.len()
    );
}

fn print_report(r: &EvidenceReport, document: Option<&Path>) {
    let intent = match r.intent {
        Intent::Sign => "SIGNED",
        Intent::Decline => "DECLINED",
    };
    println!("request:    {}", r.request_id);
    println!(
        "answer:     {intent} by {} (fingerprint {})",
        r.signer, r.signer_fingerprint
    );
    println!(
        "requester:  {} (fingerprint {})",
        r.requester, r.requester_fingerprint
    );
    let checked = match document {
        Some(p) if r.document_checked => format!("{} is this document", p.display()),
        _ if r.document_checked => "the document given is this document".to_owned(),
        _ => "no file checked; pass --document FILE to check one".to_owned(),
    };
    println!(
        "document:   SHA-256 {} ({checked})",
        to_hex(&r.document_sha256)
    );
    println!("typed name: {}", r.typed_name);
    if !r.note.is_empty() {
        println!("note:       {}", r.note);
    }
    println!(
        "signed at:  {} (the signer's clock)",
        format_utc(r.signed_at)
    );
    println!(
        "recorded:   {} by the server's audit log (deadline {})",
        format_utc(r.recorded_at),
        format_utc(r.deadline)
    );
    println!(
        "server key: {} (attested {} audit entries on {})",
        r.server_key_fingerprint,
        r.audit_entries,
        format_utc(r.attested_at)
    );
}

fn print_export(r: &ExportReport) {
    println!(
        "exported matter {} ({}) into {}",
        r.matter.id,
        r.matter
            .name
            .as_deref()
            .unwrap_or("name sealed to its owner"),
        r.dir.display()
    );
    println!("{} message(s) in {}", r.messages, r.thread.display());
    for d in &r.documents {
        println!("{}  sha256:{}", d.path.display(), d.sha256);
    }
    if let (Some(path), Some(n), Some(covered)) = (&r.audit, r.audit_entries, r.audit_covered) {
        println!(
            "audit log: {} ({n} entries verified, {covered} covered by signed checkpoints)",
            path.display()
        );
    }
    if r.age {
        eprintln!(
            "documents, thread and summary are age files sealed to your key: open them with \
             `age -d -i KEY`"
        );
    }
    if !r.failures.is_empty() {
        eprintln!("could not export {} item(s):", r.failures.len());
        for f in &r.failures {
            eprintln!("  {} {}: {}", f.what, f.id, f.reason);
        }
    }
}
