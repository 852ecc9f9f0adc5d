//! The legal workflows on the client side: matters (names sealed to their owner, export of a
//! matter's file), signature requests (sign or decline after opening the document and showing
//! its SHA-256; evidence bundles), co-counsel grants (key packages wrapped here, grant statements
//! signed here and checked on every listing) and the audit log (listed, and verified offline
//! with [`crate::crypto::audit`]).
//!
//! Like the rest of the client, everything secret happens here: the server never sees a
//! matter's name, a typed name, a statement or a content key.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde::Serialize;

use super::{
    Client, ClientError, CountingReader, Progress, ResumingChunks, account_keys, decode,
    path_segment, profile, read_json, safe_file_name, unused_path,
};
use crate::crypto::audit::{
    AuditReport, AuditScope, SignedCheckpointBytes, server_key_fingerprint, verify_audit,
};
use crate::crypto::evidence::{self, DigestWriter, EvidenceInput, EvidenceReport, Party};
use crate::crypto::{
    AgeWriter, GrantStatement, Intent, ItemOpener, MAX_SIGNED_STATEMENT_LEN, Manifest, Parallelism,
    Preamble, PublicKeys, SignatureStatement, SignedGrant, SignedStatement, open_key_package,
    open_sealed, seal_key_package, seal_to_readers,
};
use crate::wire::api::{
    AnswerSignature, AuditLog, CloseMatter, EvidenceMaterial, Grant, GrantList, GrantPackage,
    ItemHeader, MAX_SEALED_NAME_LEN, MAX_SEALED_STATEMENT_LEN, Matter, MatterList, MatterStatus,
    Message, MessageList, NewGrant, NewMatter, NewSignatureRequest, SignatureIntent, SignatureList,
    SignatureRequest,
};
use crate::wire::audit::AuditEntry;
use crate::wire::{format_utc, from_hex, to_hex};

/// Longest matter name, in bytes (the sealed metadata's matter label has the same limit).
const MAX_MATTER_NAME: usize = 1024;
/// Most messages one export reads (pages of 200).
const MAX_EXPORT_MESSAGES: usize = 100_000;

/// A matter as listed, its name opened locally.
#[derive(Debug, Clone, Serialize)]
pub struct MatterInfo {
    /// The matter id.
    pub id: String,
    /// The name, if this user can open it (it is sealed to the matter's creator).
    pub name: Option<String>,
    /// The firm user who created it.
    pub owner: String,
    /// Open, closed or deleted.
    pub status: MatterStatus,
    /// Creation time.
    pub created_at: i64,
    /// When it was closed.
    pub closed_at: Option<i64>,
    /// When its content is deleted, unless held.
    pub delete_after: Option<i64>,
    /// Whether a legal hold suspends the deletion.
    pub hold: bool,
    /// When its content was deleted.
    pub deleted_at: Option<i64>,
}

/// What [`Client::request_signature`] sends.
#[derive(Debug, Clone)]
pub struct SignatureAsk {
    /// Who is asked to sign.
    pub signer: String,
    /// Deadline, seconds since the epoch.
    pub deadline: i64,
    /// The matter, hex.
    pub matter: Option<String>,
    /// A note to the signer (the message's body).
    pub note: String,
    /// The document.
    pub file: PathBuf,
}

/// The signer's answer.
#[derive(Debug, Clone)]
pub struct SignAnswer {
    /// Sign or decline.
    pub intent: Intent,
    /// The name the signer types.
    pub typed_name: String,
    /// A note, or the reason for declining.
    pub note: String,
}

/// What the signer is asked to confirm before anything is signed.
#[derive(Debug, Clone)]
pub struct SignPrompt<'a> {
    /// The request.
    pub request: &'a SignatureRequest,
    /// The document's file name as the requester sealed it.
    pub file_name: &'a str,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of its plaintext: what the statement will bind.
    pub sha256: [u8; 32],
    /// Sign or decline.
    pub intent: Intent,
}

/// A grant as listed, with the check of its signed statement.
#[derive(Debug, Clone, Serialize)]
pub struct GrantInfo {
    /// The grant as the server keeps it.
    #[serde(flatten)]
    pub grant: Grant,
    /// Whether the statement is signed by the grantor's pinned key and says what the server
    /// says the grant is.
    pub verified: bool,
    /// Why it did not verify.
    pub problem: Option<String>,
}

/// Which audit entries to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditFilter<'a> {
    /// The whole log (admins only).
    All,
    /// One matter's chain.
    Matter(&'a str),
    /// The entries about one item (unchained).
    Item(&'a str),
}

/// An audit log as received, with its entries parsed.
#[derive(Debug, Clone)]
pub struct AuditView {
    /// The log as the server sent it.
    pub log: AuditLog,
    /// Its entries, parsed.
    pub entries: Vec<AuditEntry>,
}

/// A document written by an export.
#[derive(Debug, Clone, Serialize)]
pub struct ExportedDocument {
    /// The item id.
    pub item: String,
    /// The message that carried it.
    pub message: String,
    /// Its file name as the sender sealed it.
    pub name: String,
    /// Where it was written.
    pub path: PathBuf,
    /// SHA-256 of its plaintext, hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Something an export could not open or write.
#[derive(Debug, Clone, Serialize)]
pub struct ExportFailure {
    /// `message`, `document` or `audit`.
    pub what: &'static str,
    /// Its id.
    pub id: String,
    /// Why.
    pub reason: String,
}

/// What [`Client::export_matter`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// The matter.
    pub matter: MatterInfo,
    /// The folder.
    pub dir: PathBuf,
    /// Whether documents were re-sealed as age files to the exporting user.
    pub age: bool,
    /// Messages exported into the thread.
    pub messages: usize,
    /// Documents written.
    pub documents: Vec<ExportedDocument>,
    /// The thread as text.
    pub thread: PathBuf,
    /// The audit log as received (JSON).
    pub audit: Option<PathBuf>,
    /// Audit entries, and how many a signed checkpoint covers, when the log verified.
    pub audit_entries: Option<usize>,
    /// Entries covered by a signed checkpoint.
    pub audit_covered: Option<u64>,
    /// Everything that could not be exported.
    pub failures: Vec<ExportFailure>,
}

impl Client {
    // ---- matters ----

    /// Creates a matter, its name sealed to this user's own key.
    pub fn create_matter(&self, name: &str) -> Result<MatterInfo, ClientError> {
        let name = name.trim();
        if name.is_empty() || name.len() > MAX_MATTER_NAME {
            return Err(ClientError::Invalid(format!(
                "a matter's name must be 1 to {MAX_MATTER_NAME} bytes"
            )));
        }
        let sealed =
            seal_to_readers(name.as_bytes(), &[*self.identity()?.public()]).map_err(|error| {
                ClientError::Sealed {
                    what: "the matter's name",
                    error,
                }
            })?;
        let body = NewMatter {
            sealed_name: STANDARD.encode(sealed),
        };
        let matter: Matter = read_json(self.authed(Method::POST, "/matters", |r| r.json(&body))?)?;
        self.matter_info(matter)
    }

    /// The caller's matters (admins: all), newest first, names opened where this user can.
    pub fn matters(&self) -> Result<Vec<MatterInfo>, ClientError> {
        let list: MatterList = self.get_json("/matters")?;
        list.matters
            .into_iter()
            .map(|m| self.matter_info(m))
            .collect()
    }

    /// One matter.
    pub fn matter(&self, id: &str) -> Result<MatterInfo, ClientError> {
        let matter: Matter = self.get_json(&format!("/matters/{}", path_segment(id)))?;
        self.matter_info(matter)
    }

    /// Closes a matter: its content is deleted after `retain_days` (default: the firm's
    /// setting) unless a hold is set.
    pub fn close_matter(
        &self,
        id: &str,
        retain_days: Option<u32>,
    ) -> Result<MatterInfo, ClientError> {
        let body = CloseMatter { retain_days };
        let matter: Matter = read_json(self.authed(
            Method::POST,
            &format!("/matters/{}/close", path_segment(id)),
            |r| r.json(&body),
        )?)?;
        self.matter_info(matter)
    }

    /// Sets (`true`) or releases (`false`) a legal hold.
    pub fn hold_matter(&self, id: &str, hold: bool) -> Result<MatterInfo, ClientError> {
        let action = if hold { "hold" } else { "release" };
        let matter: Matter = read_json(self.authed(
            Method::POST,
            &format!("/matters/{}/{action}", path_segment(id)),
            |r| r.json(&serde_json::json!({})),
        )?)?;
        self.matter_info(matter)
    }

    /// Every message of a matter, oldest first.
    pub fn matter_messages(&self, id: &str) -> Result<Vec<Message>, ClientError> {
        let mut out: Vec<Message> = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let mut path = format!("/matters/{}/messages?limit=200", path_segment(id));
            if let Some(b) = &before {
                path.push_str(&format!("&before={}", path_segment(b)));
            }
            let page: MessageList = self.get_json(&path)?;
            out.extend(page.messages);
            if out.len() > MAX_EXPORT_MESSAGES {
                return Err(ClientError::Protocol(format!(
                    "the matter lists more than {MAX_EXPORT_MESSAGES} messages"
                )));
            }
            match page.next {
                Some(next) if Some(&next) != before.as_ref() => before = Some(next),
                _ => break,
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Exports a matter into `dir`: every message this user can open into `thread.txt`, every
    /// document decrypted and checked into `documents/`, the matter's audit log as received
    /// (`audit.json`, verified) and a summary (`export.json`). With `age`, the documents, the
    /// thread and the summary are instead standard age files to this user's own X25519 key
    /// (`NAME.age`), and only the audit log (ids, emails, times) is in the clear. What cannot be
    /// opened is listed in the report, not fatal.
    pub fn export_matter(
        &self,
        id: &str,
        dir: &Path,
        age: bool,
        progress: &dyn Progress,
    ) -> Result<ExportReport, ClientError> {
        let matter = self.matter(id)?;
        let docs_dir = dir.join("documents");
        fs::create_dir_all(&docs_dir)
            .map_err(|e| ClientError::io(format!("cannot create {}", docs_dir.display()), e))?;
        let messages = self.matter_messages(&matter.id)?;
        let mut failures = Vec::new();
        let mut documents = Vec::new();
        let mut thread = String::new();
        thread.push_str(&format!(
            "Matter {} ({})\nExported by {} on the server {}\n",
            matter
                .name
                .as_deref()
                .unwrap_or("(name sealed to its owner)"),
            matter.id,
            self.profile.config.email,
            self.profile.config.server,
        ));
        let mut exported = 0;
        for m in &messages {
            let view = match self.read(&m.id) {
                Ok(v) => v,
                Err(e) => {
                    failures.push(ExportFailure {
                        what: "message",
                        id: m.id.clone(),
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            exported += 1;
            thread.push_str(&format!(
                "\n=== {} | {} -> {} | message {}\nSubject: {}\n",
                format_utc(view.sent_at),
                view.from,
                view.to.join(", "),
                view.id,
                view.subject
            ));
            for d in &view.documents {
                let written = if age {
                    self.export_item_age(&d.item, &view.from, &docs_dir, progress)
                } else {
                    self.export_item_plain(&d.item, &view.from, &docs_dir, progress)
                };
                match written {
                    Ok((path, sha256, size)) => {
                        thread.push_str(&format!(
                            "Document: {} ({} bytes, SHA-256 {}) -> documents/{}\n",
                            d.name,
                            size,
                            to_hex(&sha256),
                            path.file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_default()
                        ));
                        documents.push(ExportedDocument {
                            item: d.item.clone(),
                            message: view.id.clone(),
                            name: d.name.clone(),
                            path,
                            sha256: to_hex(&sha256),
                            size,
                        });
                    }
                    Err(e) => {
                        thread.push_str(&format!("Document: {} NOT EXPORTED: {e}\n", d.name));
                        failures.push(ExportFailure {
                            what: "document",
                            id: d.item.clone(),
                            reason: e.to_string(),
                        });
                    }
                }
            }
            thread.push('\n');
            thread.push_str(&view.body);
            thread.push('\n');
        }
        let thread_path = self.write_export_file(dir, "thread.txt", thread.as_bytes(), age)?;

        let (mut audit, mut audit_entries, mut audit_covered) = (None, None, None);
        match self.audit(AuditFilter::Matter(&matter.id)) {
            Ok(view) => {
                let path = dir.join("audit.json");
                let json = serde_json::to_vec_pretty(&view.log)
                    .map_err(|e| ClientError::Protocol(e.to_string()))?;
                profile::write_atomic(&path, &json)?;
                audit = Some(path);
                match self.verify_view(&view, AuditFilter::Matter(&matter.id)) {
                    Ok(report) => {
                        audit_entries = Some(report.entries);
                        audit_covered = Some(report.covered);
                    }
                    Err(e) => failures.push(ExportFailure {
                        what: "audit",
                        id: matter.id.clone(),
                        reason: e.to_string(),
                    }),
                }
            }
            Err(e) => failures.push(ExportFailure {
                what: "audit",
                id: matter.id.clone(),
                reason: e.to_string(),
            }),
        }
        let report = ExportReport {
            matter,
            dir: dir.to_owned(),
            age,
            messages: exported,
            documents,
            thread: thread_path,
            audit,
            audit_entries,
            audit_covered,
            failures,
        };
        let summary =
            serde_json::to_vec_pretty(&report).map_err(|e| ClientError::Protocol(e.to_string()))?;
        // The summary names the documents: sealed like them.
        self.write_export_file(dir, "export.json", &summary, age)?;
        Ok(report)
    }

    /// Writes `dir/name` atomically; with `age`, as `dir/name.age` sealed to this user's own key.
    fn write_export_file(
        &self,
        dir: &Path,
        name: &str,
        bytes: &[u8],
        age: bool,
    ) -> Result<PathBuf, ClientError> {
        if !age {
            let path = dir.join(name);
            profile::write_atomic(&path, bytes)?;
            return Ok(path);
        }
        let me = *self.identity()?.public();
        let sealed = (|| {
            let mut w = AgeWriter::new(&[me], Vec::new())?;
            w.write_all(bytes)
                .map_err(|_| crate::crypto::AgeFileError::Recipients)?;
            w.finish()
                .map_err(|_| crate::crypto::AgeFileError::Recipients)
        })();
        let sealed = match sealed {
            Ok(s) => s,
            Err(error) => {
                return Err(ClientError::Sealed {
                    what: "an exported file",
                    error,
                });
            }
        };
        let path = dir.join(format!("{name}.age"));
        profile::write_atomic(&path, &sealed)?;
        Ok(path)
    }

    /// The matter's name for a message's sealed metadata: empty when this user cannot open it
    /// (it is sealed to the matter's creator) or cannot see the matter. The label is a
    /// convenience for readers; the server checks the matter id itself when the message is sent.
    pub(super) fn matter_label(&self, id: &str) -> String {
        self.matter(id)
            .ok()
            .and_then(|m| m.name)
            .unwrap_or_default()
    }

    fn matter_info(&self, m: Matter) -> Result<MatterInfo, ClientError> {
        let name = if m.owner == self.profile.config.email {
            let sealed = decode(&m.sealed_name, "sealed matter name")?;
            let plain = open_sealed(
                &sealed,
                self.identity()?,
                MAX_SEALED_NAME_LEN,
                MAX_MATTER_NAME,
            )
            .map_err(|error| ClientError::Sealed {
                what: "the matter's name",
                error,
            })?;
            Some(
                String::from_utf8(plain.to_vec())
                    .map_err(|_| ClientError::Protocol("a matter's name is not UTF-8".into()))?,
            )
        } else {
            None
        };
        Ok(MatterInfo {
            id: m.id,
            name,
            owner: m.owner,
            status: m.status,
            created_at: m.created_at,
            closed_at: m.closed_at,
            delete_after: m.delete_after,
            hold: m.hold,
            deleted_at: m.deleted_at,
        })
    }

    /// Downloads one document into `dir` (checked like `download`) and returns its path,
    /// SHA-256 and size.
    fn export_item_plain(
        &self,
        item: &str,
        sender: &str,
        dir: &Path,
        progress: &dyn Progress,
    ) -> Result<(PathBuf, [u8; 32], u64), ClientError> {
        let path = self.download_item(item, sender, dir, progress)?;
        let file = File::open(&path)
            .map_err(|e| ClientError::io(format!("cannot read {}", path.display()), e))?;
        let mut digest = DigestWriter::new();
        io::copy(&mut io::BufReader::new(file), &mut digest)
            .map_err(|e| ClientError::io(format!("cannot read {}", path.display()), e))?;
        let size = digest.written();
        Ok((path, digest.finish(), size))
    }

    /// Opens one document and re-seals it, as it is checked chunk by chunk, into a standard age
    /// file to this user's own X25519 key; renamed into place only when complete.
    fn export_item_age(
        &self,
        item: &str,
        sender: &str,
        dir: &Path,
        progress: &dyn Progress,
    ) -> Result<(PathBuf, [u8; 32], u64), ClientError> {
        let (manifest, opener) = self.open_header(item, Some(sender))?;
        let name = format!("{}.age", safe_file_name(&opener.metadata().file_name, item));
        let target = unused_path(dir, &name);
        let partial = dir.join(format!(".{name}.partial-{}", std::process::id()));
        let me = *self.identity()?.public();
        let result: Result<([u8; 32], u64), ClientError> = (|| {
            let file = profile::create_private(&partial)
                .map_err(|e| ClientError::io(format!("cannot create {}", partial.display()), e))?;
            let age = AgeWriter::new(&[me], io::BufWriter::with_capacity(1 << 20, &file)).map_err(
                |error| ClientError::Sealed {
                    what: "the exported age file",
                    error,
                },
            )?;
            let mut tee = Tee {
                age,
                digest: DigestWriter::new(),
            };
            progress.begin(&name, manifest.ciphertext_len());
            let opened = opener.open_chunks(
                CountingReader::new(self.chunk_stream(item, &manifest), progress),
                &mut tee,
                Parallelism::All,
            );
            progress.end();
            let size = opened?;
            let write_err = |e| ClientError::io(format!("cannot write {}", partial.display()), e);
            let mut buffered = tee.age.finish().map_err(write_err)?;
            buffered.flush().map_err(write_err)?;
            drop(buffered);
            file.sync_all().map_err(write_err)?;
            fs::rename(&partial, &target)
                .map_err(|e| ClientError::io(format!("cannot write {}", target.display()), e))?;
            Ok((tee.digest.finish(), size))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&partial);
        }
        let (sha256, size) = result?;
        Ok((target, sha256, size))
    }

    /// The item's ciphertext as one resuming stream.
    fn chunk_stream<'a>(&'a self, item: &'a str, manifest: &Manifest) -> impl io::Read + use<'a> {
        ResumingChunks::new(
            move |from| {
                self.authed(
                    Method::GET,
                    &format!("/items/{item}/chunks?from={from}"),
                    |r| r,
                )
                .map_err(io::Error::other)
            },
            manifest.ciphertext_len(),
            manifest.chunk_len(0).unwrap_or(1) as u64,
        )
    }

    // ---- signature requests ----

    /// Sends `ask.file` to the signer as a message (sealed to the signer and this user, the
    /// note as its body), then records the signature request.
    pub fn request_signature(
        &self,
        ask: &SignatureAsk,
        progress: &dyn Progress,
    ) -> Result<SignatureRequest, ClientError> {
        let name = ask
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let message = self.send(
            &super::Outgoing {
                to: vec![ask.signer.trim().to_owned()],
                subject: format!("Signature requested: {name}"),
                body: ask.note.clone(),
                files: vec![ask.file.clone()],
                in_reply_to: None,
                matter: ask.matter.clone(),
            },
            progress,
        )?;
        let document = message
            .documents
            .first()
            .map(|d| d.item.clone())
            .ok_or_else(|| ClientError::Protocol("the message lost its document".into()))?;
        let body = NewSignatureRequest {
            message: message.id,
            document,
            signer: ask.signer.trim().to_owned(),
            deadline: ask.deadline,
        };
        read_json(self.authed(Method::POST, "/signatures", |r| r.json(&body))?)
    }

    /// Signature requests to and by this user, newest first.
    pub fn signatures(&self) -> Result<Vec<SignatureRequest>, ClientError> {
        let list: SignatureList = self.get_json("/signatures")?;
        Ok(list.requests)
    }

    /// One signature request.
    pub fn signature(&self, id: &str) -> Result<SignatureRequest, ClientError> {
        self.get_json(&format!("/signatures/{}", path_segment(id)))
    }

    /// Answers a signature request as its signer: opens the document (in memory, chunk by
    /// chunk, nothing written to disk) and computes the SHA-256 of its plaintext, asks
    /// `confirm` with it, then signs the statement, seals it to the requester and this user,
    /// and sends it. The server refuses an answer after the deadline or a second answer.
    pub fn answer_signature(
        &self,
        id: &str,
        answer: &SignAnswer,
        confirm: &dyn Fn(&SignPrompt<'_>) -> Result<bool, ClientError>,
    ) -> Result<SignatureRequest, ClientError> {
        let request = self.signature(id)?;
        let me = self.profile.config.email.clone();
        if request.signer != me {
            return Err(ClientError::Invalid(format!(
                "request {} asks {} to sign, not {me}",
                request.id, request.signer
            )));
        }
        let request_id: [u8; 16] = hex_id(&request.id, "request id")?;
        // The document must be the one the requester sealed into the message.
        let message = self.read(&request.message)?;
        if message.from != request.requester {
            return Err(ClientError::ItemMismatch {
                item: request.message.clone(),
                reason: "the message was not sent by the requester",
            });
        }
        if !message.documents.iter().any(|d| d.item == request.document) {
            return Err(ClientError::ItemMismatch {
                item: request.document.clone(),
                reason: "the document is not one the requester sealed into the message",
            });
        }
        let (manifest, opener) = self.open_header(&request.document, Some(&request.requester))?;
        let mut digest = DigestWriter::new();
        opener.open_chunks(
            self.chunk_stream(&request.document, &manifest),
            &mut digest,
            Parallelism::All,
        )?;
        let size = digest.written();
        let sha256 = digest.finish();
        let prompt = SignPrompt {
            request: &request,
            file_name: &opener.metadata().file_name,
            size,
            sha256,
            intent: answer.intent,
        };
        if !confirm(&prompt)? {
            return Err(ClientError::Cancelled("nothing was signed"));
        }
        let identity = self.identity()?;
        let signed = SignatureStatement {
            request_id,
            document_sha256: sha256,
            signer_email: me,
            signer_key: [0; 32],
            time: super::now(),
            intent: answer.intent,
            typed_name: answer.typed_name.clone(),
            note: answer.note.clone(),
        }
        .sign(identity)?;
        let requester = self.recipient_keys(&request.requester)?;
        let sealed = seal_to_readers(&signed.to_bytes(), &[requester, *identity.public()])
            .map_err(|error| ClientError::Sealed {
                what: "the signature statement",
                error,
            })?;
        let body = AnswerSignature {
            intent: match answer.intent {
                Intent::Sign => SignatureIntent::Sign,
                Intent::Decline => SignatureIntent::Decline,
            },
            sealed_statement: STANDARD.encode(sealed),
        };
        read_json(self.authed(
            Method::POST,
            &format!("/signatures/{}/answer", path_segment(&request.id)),
            |r| r.json(&body),
        )?)
    }

    /// Builds the evidence bundle of an answered request and writes it to `out` atomically.
    /// Before writing, this client opens the sealed statement, opens the document again to
    /// check that the statement is about it, checks both parties' keys against the pins, and
    /// verifies the whole bundle as `verify-evidence` would.
    pub fn evidence(&self, id: &str, out: &Path) -> Result<EvidenceReport, ClientError> {
        let material: EvidenceMaterial =
            self.get_json(&format!("/signatures/{}/evidence", path_segment(id)))?;
        let request = &material.request;
        if material.requester.email != request.requester || material.signer.email != request.signer
        {
            return Err(ClientError::Protocol(
                "the evidence names other parties than the request".into(),
            ));
        }
        let requester_keys = self.party_keys(&material.requester)?;
        let signer_keys = self.party_keys(&material.signer)?;
        let sealed = request
            .sealed_statement
            .as_deref()
            .ok_or_else(|| ClientError::Protocol("the request has no statement".into()))?;
        let statement_bytes = open_sealed(
            &decode(sealed, "sealed statement")?,
            self.identity()?,
            MAX_SEALED_STATEMENT_LEN,
            MAX_SIGNED_STATEMENT_LEN,
        )
        .map_err(|error| ClientError::Sealed {
            what: "the signature statement",
            error,
        })?;
        let statement = SignedStatement::parse(&statement_bytes)?;
        // The digest in the bundle is the one this client computes from the document itself.
        let (manifest, opener) = self.open_header(&request.document, Some(&request.requester))?;
        let mut digest = DigestWriter::new();
        opener.open_chunks(
            self.chunk_stream(&request.document, &manifest),
            &mut digest,
            Parallelism::All,
        )?;
        let document_sha256 = digest.finish();
        let entries = material
            .audit
            .iter()
            .map(|r| decode(&r.raw, "audit entry"))
            .collect::<Result<Vec<_>, _>>()?;
        let attestation = decode(&material.attestation, "attestation")?;
        let server_key: [u8; 32] = decode(&material.server_key, "server key")?
            .try_into()
            .map_err(|_| ClientError::Protocol("the server key is not 32 bytes".into()))?;
        self.check_audit_key(&server_key)?;
        let (bytes, report) = evidence::build(&EvidenceInput {
            request,
            requester: Party {
                email: material.requester.email.clone(),
                keys: requester_keys,
            },
            signer: Party {
                email: material.signer.email.clone(),
                keys: signer_keys,
            },
            statement: &statement,
            document_sha256,
            audit_entries: &entries,
            attested_at: material.attested_at,
            attestation: &attestation,
            server_key: &server_key,
        })?;
        profile::write_atomic(out, &bytes)?;
        Ok(report)
    }

    // ---- co-counsel grants ----

    /// Shares `item` (a document, or a message with all its documents) with `grantee` until
    /// `until`: wraps each item's content key for the grantee's pinned keys, signs the grant
    /// statement and sends both. A message's matter is the grant's unless `matter` is given.
    pub fn share(
        &self,
        item: &str,
        grantee: &str,
        until: i64,
        matter: Option<&str>,
    ) -> Result<Grant, ClientError> {
        let grantee = grantee.trim();
        let grantee_keys = self.recipient_keys(grantee)?;
        let (message, sender, items, record, message_matter) =
            match self.get_json::<Message>(&format!("/messages/{}", path_segment(item))) {
                Ok(message) => {
                    // Checks the sender's seal and that the documents are the ones sealed in.
                    let (_, record) = self.open_record(&message)?;
                    let mut items = vec![message.item.clone()];
                    items.extend(message.documents.iter().map(|d| d.item.clone()));
                    let from = message.from;
                    (Some(message.id), Some(from), items, record, message.matter)
                }
                Err(e) if e.is_not_found() => (None, None, vec![item.to_owned()], vec![], None),
                Err(e) => return Err(e),
            };
        let mut packages = Vec::with_capacity(items.len());
        let mut digests = Vec::with_capacity(items.len());
        for id in &items {
            let header: ItemHeader = self.get_json(&format!("/items/{}", path_segment(id)))?;
            let expected = sender
                .clone()
                .unwrap_or_else(|| header.sender.email.clone());
            let sender_keys = self.sender_keys(&header.sender, &expected, &header.item)?;
            let preamble = Preamble::parse(&decode(&header.preamble, "preamble")?)?;
            let manifest = Manifest::parse(&decode(&header.manifest, "manifest")?)?;
            // The server's id names the upload; the preamble's id is the one the content key is
            // bound to (and that key packages name).
            let item_id = preamble.item_id();
            if header.item != *id {
                return Err(ClientError::ItemMismatch {
                    item: id.clone(),
                    reason: "the server answered with another item",
                });
            }
            let key = open_key_package(
                &decode(&header.key_package, "key package")?,
                self.identity()?,
                &item_id,
            )?;
            // The key must open this exact item under its sender's seal before it is shared, and
            // a message's documents must be the ones its sender sealed into it.
            ItemOpener::new(&key, &preamble, &manifest, &sender_keys)?;
            if message.is_some()
                && Some(id) != items.first()
                && record.iter().find(|(i, _)| i == id).map(|r| r.1) != Some(manifest.digest())
            {
                return Err(ClientError::DocumentsMismatch(item.to_owned()));
            }
            packages.push(GrantPackage {
                item: id.clone(),
                package: STANDARD.encode(seal_key_package(&key, &item_id, &grantee_keys)?),
            });
            digests.push((hex_id(id, "item id")?, manifest.digest()));
        }
        let matter = matter.map(str::to_owned).or(message_matter);
        let identity = self.identity()?;
        let signed = GrantStatement {
            id: crate::crypto::random_array()?,
            grantor_email: self.profile.config.email.clone(),
            grantor_key: [0; 32],
            grantee_email: grantee.to_owned(),
            grantee_fingerprint: grantee_keys.fingerprint(),
            matter: matter
                .as_deref()
                .map(|m| hex_id(m, "matter id"))
                .transpose()?,
            message: message
                .as_deref()
                .map(|m| hex_id(m, "message id"))
                .transpose()?,
            items: digests,
            created_at: super::now(),
            until,
        }
        .sign(identity)?;
        let body = NewGrant {
            grant: STANDARD.encode(signed.to_bytes()),
            key_packages: packages,
        };
        read_json(self.authed(Method::POST, "/grants", |r| r.json(&body))?)
    }

    /// Grants by and to this user, each statement checked against the grantor's pinned key and
    /// against what the server says the grant is.
    pub fn grants(&self) -> Result<Vec<GrantInfo>, ClientError> {
        let list: GrantList = self.get_json("/grants")?;
        list.grants
            .into_iter()
            .map(|grant| {
                let problem = match self.check_grant(&grant) {
                    Ok(()) => None,
                    // A changed key of the grantor must stop the caller, as everywhere.
                    Err(e @ ClientError::ChangedKey { .. }) => return Err(e),
                    Err(e) => Some(e.to_string()),
                };
                Ok(GrantInfo {
                    verified: problem.is_none(),
                    problem,
                    grant,
                })
            })
            .collect()
    }

    /// Revokes a grant: the server stops serving the grantee and deletes their key packages.
    pub fn revoke_grant(&self, id: &str) -> Result<Grant, ClientError> {
        read_json(self.authed(
            Method::POST,
            &format!("/grants/{}/revoke", path_segment(id)),
            |r| r.json(&serde_json::json!({})),
        )?)
    }

    fn check_grant(&self, grant: &Grant) -> Result<(), ClientError> {
        let signed = SignedGrant::parse(&decode(&grant.statement, "grant statement")?)?;
        let grantor = self.recipient_keys(&grant.grantor)?;
        let g = signed.verify(&grantor)?;
        let items: Vec<String> = g.items.iter().map(|(i, _)| to_hex(i)).collect();
        let differs = |what: &str| {
            Err(ClientError::Protocol(format!(
                "the server's grant differs from the signed statement ({what})"
            )))
        };
        if to_hex(&g.id) != grant.id {
            return differs("id");
        }
        if g.grantor_email != grant.grantor || g.grantee_email != grant.grantee {
            return differs("people");
        }
        if items != grant.items {
            return differs("items");
        }
        if g.until != grant.until {
            return differs("end");
        }
        if g.message.map(|m| to_hex(&m)) != grant.message
            || g.matter.map(|m| to_hex(&m)) != grant.matter
        {
            return differs("message or matter");
        }
        if grant.grantee == self.profile.config.email
            && g.grantee_fingerprint != self.identity()?.fingerprint()
        {
            return differs("the grantee's fingerprint is not mine");
        }
        Ok(())
    }

    // ---- audit ----

    /// Audit entries with the signed checkpoints that anchor them.
    pub fn audit(&self, filter: AuditFilter<'_>) -> Result<AuditView, ClientError> {
        let path = match filter {
            AuditFilter::All => "/audit".to_owned(),
            AuditFilter::Matter(m) => format!("/audit?matter={}", path_segment(m)),
            AuditFilter::Item(i) => format!("/audit?item={}", path_segment(i)),
        };
        let log: AuditLog = self.get_json(&path)?;
        let entries = log
            .entries
            .iter()
            .enumerate()
            .map(|(position, r)| {
                AuditEntry::from_stored(&decode(&r.raw, "audit entry")?).map_err(|reason| {
                    ClientError::Audit(crate::crypto::audit::AuditError::Malformed {
                        position,
                        reason,
                    })
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AuditView { log, entries })
    }

    /// Fetches the whole log (`None`, admins only) or one matter's, and verifies its chain and
    /// signed checkpoints. The error names the first broken link.
    pub fn verify_audit(
        &self,
        matter: Option<&str>,
    ) -> Result<(AuditView, AuditReport), ClientError> {
        let filter = matter.map_or(AuditFilter::All, AuditFilter::Matter);
        let view = self.audit(filter)?;
        let report = self.verify_view(&view, filter)?;
        Ok((view, report))
    }

    /// Verifies an audit view against the pinned audit key: the whole log, or a matter's chain.
    /// Item listings are not a chain.
    fn verify_view(
        &self,
        view: &AuditView,
        filter: AuditFilter<'_>,
    ) -> Result<AuditReport, ClientError> {
        let server_key: [u8; 32] = decode(&view.log.server_key, "server key")?
            .try_into()
            .map_err(|_| ClientError::Protocol("the server key is not 32 bytes".into()))?;
        self.check_audit_key(&server_key)?;
        verify_view(view, filter, &server_key)
    }

    /// The server's audit key must be the one pinned when first seen (pinned now if new): a
    /// server that could swap it could re-sign a rewritten history.
    fn check_audit_key(&self, key: &[u8; 32]) -> Result<(), ClientError> {
        match self.profile.pinned_audit_key()? {
            Some(pinned) if pinned == *key => Ok(()),
            Some(pinned) => Err(ClientError::AuditKeyChanged {
                pinned: server_key_fingerprint(&pinned),
                presented: server_key_fingerprint(key),
            }),
            None => self.profile.pin_audit_key(key),
        }
    }

    /// An account's keys: this user's own, or a correspondent's checked against the pin.
    fn party_keys(&self, account: &crate::wire::api::Account) -> Result<PublicKeys, ClientError> {
        let keys = account_keys(account)?;
        if account.email == self.profile.config.email {
            if keys != *self.identity()?.public() {
                return Err(ClientError::ChangedKey {
                    email: account.email.clone(),
                    pinned: self.identity()?.fingerprint().to_string(),
                    presented: keys.fingerprint().to_string(),
                });
            }
        } else {
            self.check_pin(&account.email, &keys)?;
        }
        Ok(keys)
    }
}

/// Verifies an audit view under `server_key`.
fn verify_view(
    view: &AuditView,
    filter: AuditFilter<'_>,
    server_key: &[u8; 32],
) -> Result<AuditReport, ClientError> {
    let scope = match filter {
        AuditFilter::All => AuditScope::Log,
        AuditFilter::Matter(m) => AuditScope::Matter(hex_id(m, "matter id")?),
        AuditFilter::Item(_) => {
            return Err(ClientError::Invalid(
                "an item's entries are not a chain: verify the whole log or a matter".into(),
            ));
        }
    };
    let raw = view
        .log
        .entries
        .iter()
        .map(|r| decode(&r.raw, "audit entry"))
        .collect::<Result<Vec<_>, _>>()?;
    let checkpoints = view
        .log
        .checkpoints
        .iter()
        .map(|c| {
            Ok(SignedCheckpointBytes {
                checkpoint: decode(&c.checkpoint, "checkpoint")?,
                signature: decode(&c.signature, "checkpoint signature")?,
            })
        })
        .collect::<Result<Vec<_>, ClientError>>()?;
    Ok(verify_audit(&raw, &checkpoints, server_key, scope)?)
}

/// A 16-byte id from 32 hex digits.
fn hex_id(text: &str, what: &str) -> Result<[u8; 16], ClientError> {
    from_hex(text)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ClientError::Invalid(format!("the {what} {text:.40} is not 32 hex digits")))
}

/// Writes to an age file and a digest at once.
struct Tee<W: Write> {
    age: AgeWriter<W>,
    digest: DigestWriter,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.age.write(buf)?;
        self.digest.write_all(&buf[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.age.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_hex_digits() {
        assert_eq!(hex_id(&"ab".repeat(16), "id").unwrap(), [0xab; 16]);
        assert!(matches!(
            hex_id("abc", "matter id"),
            Err(ClientError::Invalid(m)) if m.contains("matter id")
        ));
    }

    #[test]
    fn the_tee_digests_what_it_seals() {
        let me = crate::crypto::Identity::generate().unwrap();
        let mut tee = Tee {
            age: AgeWriter::new(&[*me.public()], Vec::new()).unwrap(),
            digest: DigestWriter::new(),
        };
        tee.write_all(b"exhibit A").unwrap();
        let file = tee.age.finish().unwrap();
        assert_eq!(
            tee.digest.finish(),
            DigestWriter::digest_of(&b"exhibit A"[..]).unwrap()
        );
        assert_eq!(
            &open_sealed(&file, &me, 4096, 64).unwrap()[..],
            b"exhibit A"
        );
    }
}
