//! Evidence bundles: everything needed to show, offline and years later, that a signer signed
//! (or declined) one exact document of one signature request — the signed statement, both
//! parties' public keys and fingerprints, the document's SHA-256, and the server's audit
//! entries about the request with the server's signed attestation of them.
//!
//! A bundle is one JSON file (`attache-evidence v1`, laid out in `docs/FORMAT.md` §16).
//! The server's attestation binds the request's fields and both parties' emails and public
//! keys as well as the entries (`wire::audit::attestation_message`), so neither the keys nor,
//! say, the deadline can be changed or rebuilt around another key pair without the server key.
//! [`verify`] runs every check in a fixed order and names the first that fails
//! ([`EvidenceError::check`]); it needs no server, no profile and no secret key.

use std::io::{self, Read, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ED25519, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use super::audit::server_key_fingerprint;
use super::{Intent, PublicKeys, SignedStatement, StatementError, sha256};
use crate::wire::api::{SignatureRequest, SignatureStatus};
use crate::wire::audit::{
    Attestation, AttestedParty, AuditEntry, MAX_ATTESTED_ENTRIES, attestation_message,
};
use crate::wire::{format_utc, from_hex, to_hex};

/// The `format` field of every version-1 bundle.
pub const EVIDENCE_FORMAT: &str = "attache-evidence v1";
/// The largest bundle read.
pub const MAX_BUNDLE_LEN: usize = 1 << 20;
/// The audit actions that record the signer's answer, with the intent each records.
const ANSWER_ACTIONS: &[(&str, Intent)] = &[
    ("signature.sign", Intent::Sign),
    ("signature.decline", Intent::Decline),
];

/// The first check a bundle failed. [`EvidenceError::check`] is the check's stable name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    /// `format`: not a version-1 bundle, over [`MAX_BUNDLE_LEN`], or a field does not decode.
    #[error("format: {0}")]
    Format(String),
    /// `parties`: the request names other people than the keys in the bundle.
    #[error("parties: the request's requester or signer is not the person whose keys are given")]
    Parties,
    /// `requester-fingerprint`: the requester's fingerprint is not that of their public keys.
    #[error("requester-fingerprint: the requester's fingerprint does not match their public keys")]
    RequesterFingerprint,
    /// `signer-fingerprint`: the signer's fingerprint is not that of their public keys.
    #[error("signer-fingerprint: the signer's fingerprint does not match their public keys")]
    SignerFingerprint,
    /// `statement-signature`: the statement does not parse or its signature does not verify.
    #[error("statement-signature: {0}")]
    StatementSignature(StatementError),
    /// `statement-signer`: the statement is validly signed, but not by the signer named.
    #[error("statement-signer: {0}")]
    StatementSigner(&'static str),
    /// `statement-request`: the statement is about another signature request.
    #[error("statement-request: the statement is about another signature request")]
    StatementRequest,
    /// `statement-intent`: the statement signs where the request says declined, or the reverse.
    #[error(
        "statement-intent: the statement's intent ({statement}) is not the request's status ({status})"
    )]
    StatementIntent {
        /// `sign` or `decline`.
        statement: &'static str,
        /// `signed` or `declined`.
        status: &'static str,
    },
    /// `document-digest`: the statement is about another document than the bundle's digest.
    #[error("document-digest: the statement is about another document than the bundle names")]
    DocumentDigest,
    /// `document-file`: the document given to check is not the one the statement is about.
    #[error(
        "document-file: the document given is not the one signed (its SHA-256 is {actual}; the \
         statement is about {expected})"
    )]
    DocumentFile {
        /// The signed digest, hex.
        expected: String,
        /// The given document's digest, hex.
        actual: String,
    },
    /// `attestation-signature`: the server's attestation of the audit entries does not verify
    /// under the server key in the bundle.
    #[error("attestation-signature: the server's attestation of the audit entries does not verify")]
    AttestationSignature,
    /// `audit-entries`: an entry does not concern the request, or none records the answer.
    #[error("audit-entries: {0}")]
    AuditEntries(String),
    /// `deadline`: the server recorded the answer after the request's deadline.
    #[error("deadline: the answer was recorded at {answered}, after the deadline {deadline}")]
    Deadline {
        /// When the audit entry records the answer, formatted.
        answered: String,
        /// The deadline, formatted.
        deadline: String,
    },
}

impl EvidenceError {
    /// The stable name of the failed check, as `attache verify-evidence` prints it.
    pub fn check(&self) -> &'static str {
        match self {
            Self::Format(_) => "format",
            Self::Parties => "parties",
            Self::RequesterFingerprint => "requester-fingerprint",
            Self::SignerFingerprint => "signer-fingerprint",
            Self::StatementSignature(_) => "statement-signature",
            Self::StatementSigner(_) => "statement-signer",
            Self::StatementRequest => "statement-request",
            Self::StatementIntent { .. } => "statement-intent",
            Self::DocumentDigest => "document-digest",
            Self::DocumentFile { .. } => "document-file",
            Self::AttestationSignature => "attestation-signature",
            Self::AuditEntries(_) => "audit-entries",
            Self::Deadline { .. } => "deadline",
        }
    }
}

/// One party as a bundle names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// Email.
    pub email: String,
    /// Public keys.
    pub keys: PublicKeys,
}

/// What [`build`] assembles into a bundle.
#[derive(Debug, Clone)]
pub struct EvidenceInput<'a> {
    /// The answered request, as the server keeps it.
    pub request: &'a SignatureRequest,
    /// The requester.
    pub requester: Party,
    /// The signer.
    pub signer: Party,
    /// The signer's signed statement.
    pub statement: &'a SignedStatement,
    /// SHA-256 of the document's plaintext.
    pub document_sha256: [u8; 32],
    /// The audit entries about the request, as stored.
    pub audit_entries: &'a [Vec<u8>],
    /// When the server attested them.
    pub attested_at: i64,
    /// The server's signature over the attestation message.
    pub attestation: &'a [u8],
    /// The server's audit key.
    pub server_key: &'a [u8; 32],
}

/// What a bundle proves, once every check passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceReport {
    /// The signature request, hex.
    pub request_id: String,
    /// The requester's email.
    pub requester: String,
    /// The requester's fingerprint (safety number).
    pub requester_fingerprint: String,
    /// The signer's email (as the statement and the request name them).
    pub signer: String,
    /// The signer's fingerprint (safety number): the statement is signed by these keys.
    pub signer_fingerprint: String,
    /// Signed or declined.
    pub intent: Intent,
    /// SHA-256 of the document's plaintext.
    pub document_sha256: [u8; 32],
    /// Whether a document file was checked against that digest.
    pub document_checked: bool,
    /// The name the signer typed.
    pub typed_name: String,
    /// The signer's note or reason.
    pub note: String,
    /// When the signer signed, by the signer's own clock.
    pub signed_at: i64,
    /// When the server recorded the answer in its audit log.
    pub recorded_at: i64,
    /// The request's deadline.
    pub deadline: i64,
    /// When the server attested the audit entries.
    pub attested_at: i64,
    /// How many audit entries the server attested.
    pub audit_entries: usize,
    /// The fingerprint of the server's audit key (`sha256:…`): compare it with the firm's.
    pub server_key_fingerprint: String,
}

/// Assembles a bundle and verifies it as a reader would; returns the bundle's bytes and what
/// it proves.
pub fn build(input: &EvidenceInput<'_>) -> Result<(Vec<u8>, EvidenceReport), EvidenceError> {
    let bytes = assemble(input)?;
    let report = verify(&bytes, None)?;
    Ok((bytes, report))
}

/// The bundle's bytes, unchecked.
fn assemble(input: &EvidenceInput<'_>) -> Result<Vec<u8>, EvidenceError> {
    let r = input.request;
    let bundle = BundleJson {
        format: EVIDENCE_FORMAT.to_owned(),
        request: RequestJson {
            id: r.id.clone(),
            requester: r.requester.clone(),
            signer: r.signer.clone(),
            message: r.message.clone(),
            document: r.document.clone(),
            matter: r.matter.clone(),
            created_at: r.created_at,
            deadline: r.deadline,
            status: r.status,
            answered_at: r.answered_at,
        },
        statement: STANDARD.encode(input.statement.to_bytes()),
        requester: PartyJson::of(&input.requester),
        signer: PartyJson::of(&input.signer),
        document_sha256: to_hex(&input.document_sha256),
        audit: AuditJson {
            entries: input
                .audit_entries
                .iter()
                .map(|e| STANDARD.encode(e))
                .collect(),
            attested_at: input.attested_at,
            attestation: STANDARD.encode(input.attestation),
            server_key: STANDARD.encode(input.server_key),
        },
    };
    let mut bytes = serde_json::to_vec_pretty(&bundle)
        .map_err(|_| EvidenceError::Format("cannot encode the bundle".into()))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Verifies a bundle offline. With `document_sha256` (the SHA-256 of a document file, see
/// [`DigestWriter`]), also checks that this is the document the statement is about.
///
/// The checks run in the order of `docs/FORMAT.md` §16 and the first failure is returned: a
/// field an earlier check reads keeps that check's name (another signer key fails
/// `statement-signer`), and everything else the server attested — the request's fields, both
/// parties' emails and keys, the entries — fails `attestation-signature`.
pub fn verify(
    bundle: &[u8],
    document_sha256: Option<[u8; 32]>,
) -> Result<EvidenceReport, EvidenceError> {
    let b = Decoded::parse(bundle)?;

    if b.request.requester != b.requester.email || b.request.signer != b.signer.email {
        return Err(EvidenceError::Parties);
    }
    if !b
        .requester
        .keys
        .fingerprint()
        .matches_safety_number(&b.requester_fingerprint)
    {
        return Err(EvidenceError::RequesterFingerprint);
    }
    if !b
        .signer
        .keys
        .fingerprint()
        .matches_safety_number(&b.signer_fingerprint)
    {
        return Err(EvidenceError::SignerFingerprint);
    }

    let signed = SignedStatement::parse(&b.statement).map_err(EvidenceError::StatementSignature)?;
    let statement = signed.unverified_statement();
    if statement.signer_key != b.signer.keys.ed25519 {
        return Err(EvidenceError::StatementSigner(
            "the statement is signed by another key than the signer's",
        ));
    }
    if statement.signer_email != b.signer.email {
        return Err(EvidenceError::StatementSigner(
            "the statement names another signer's email",
        ));
    }
    if statement.request_id != b.request_id {
        return Err(EvidenceError::StatementRequest);
    }
    let status = match b.request.status {
        SignatureStatus::Signed => "signed",
        _ => "declined",
    };
    let intent_name = match statement.intent {
        Intent::Sign => "sign",
        Intent::Decline => "decline",
    };
    if (statement.intent == Intent::Sign) != (b.request.status == SignatureStatus::Signed) {
        return Err(EvidenceError::StatementIntent {
            statement: intent_name,
            status,
        });
    }
    if statement.document_sha256 != b.document_sha256 {
        return Err(EvidenceError::DocumentDigest);
    }
    if let Some(given) = document_sha256 {
        if given != statement.document_sha256 {
            return Err(EvidenceError::DocumentFile {
                expected: to_hex(&statement.document_sha256),
                actual: to_hex(&given),
            });
        }
    }

    // The attestation binds the entries, the request's fields and both parties' emails and
    // keys: any of them changed since the server signed fails here.
    let hashes: Vec<[u8; 32]> = b.entries.iter().map(|e| sha256(&[e])).collect();
    let (requester_keys, signer_keys) = (b.requester.keys.to_bytes(), b.signer.keys.to_bytes());
    let message = attestation_message(&Attestation {
        request_id: &b.request_id,
        requester: AttestedParty {
            email: &b.request.requester,
            public_keys: &requester_keys,
        },
        signer: AttestedParty {
            email: &b.request.signer,
            public_keys: &signer_keys,
        },
        message: &b.message,
        document: &b.document,
        matter: b.matter.as_ref(),
        created_at: b.request.created_at,
        deadline: b.request.deadline,
        status: b.request.status,
        answered_at: b.request.answered_at,
        attested_at: b.attested_at,
        entry_hashes: &hashes,
    });
    UnparsedPublicKey::new(&ED25519, &b.server_key)
        .verify(&message, &b.attestation)
        .map_err(|_| EvidenceError::AttestationSignature)?;

    let answer = check_entries(&b, statement.intent)?;
    if answer.at > b.request.deadline {
        return Err(EvidenceError::Deadline {
            answered: format_utc(answer.at),
            deadline: format_utc(b.request.deadline),
        });
    }

    Ok(EvidenceReport {
        request_id: b.request.id.clone(),
        requester: b.requester.email.clone(),
        requester_fingerprint: b.requester.keys.fingerprint().to_string(),
        signer: b.signer.email.clone(),
        signer_fingerprint: b.signer.keys.fingerprint().to_string(),
        intent: statement.intent,
        document_sha256: statement.document_sha256,
        document_checked: document_sha256.is_some(),
        typed_name: statement.typed_name.clone(),
        note: statement.note.clone(),
        signed_at: statement.time,
        recorded_at: answer.at,
        deadline: b.request.deadline,
        attested_at: b.attested_at,
        audit_entries: b.entries.len(),
        server_key_fingerprint: server_key_fingerprint(&b.server_key),
    })
}

/// A `Write` that computes the SHA-256 of what passes through it (an opened document's
/// plaintext, or a file on disk) and counts the bytes.
pub struct DigestWriter {
    context: ring::digest::Context,
    written: u64,
}

impl DigestWriter {
    /// A new, empty digest.
    pub fn new() -> Self {
        Self {
            context: ring::digest::Context::new(&ring::digest::SHA256),
            written: 0,
        }
    }

    /// The bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The SHA-256 of everything written.
    pub fn finish(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.context.finish().as_ref());
        out
    }

    /// The SHA-256 of everything `reader` yields.
    pub fn digest_of<R: Read>(mut reader: R) -> io::Result<[u8; 32]> {
        let mut w = Self::new();
        io::copy(&mut reader, &mut w)?;
        Ok(w.finish())
    }
}

impl Default for DigestWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for DigestWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.context.update(buf);
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for DigestWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestWriter")
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

/// The audit entries must each concern the request (its id, message or document), be in log
/// order, and include the signer's answer; returns the answer entry.
fn check_entries(b: &Decoded, intent: Intent) -> Result<AuditEntry, EvidenceError> {
    let fail = |s: String| EvidenceError::AuditEntries(s);
    let concerned = [
        b.request.id.as_str(),
        b.request.message.as_str(),
        b.request.document.as_str(),
    ];
    let mut answer: Option<AuditEntry> = None;
    let mut previous: Option<u64> = None;
    for (i, raw) in b.entries.iter().enumerate() {
        let entry = AuditEntry::from_stored(raw)
            .map_err(|e| fail(format!("entry {i} is not an audit entry: {e}")))?;
        if previous.is_some_and(|p| entry.seq <= p) {
            return Err(fail(format!(
                "entry {} is listed after entry {}: not in log order",
                entry.seq,
                previous.unwrap_or_default()
            )));
        }
        previous = Some(entry.seq);
        if !concerned.contains(&entry.object.as_str()) {
            return Err(fail(format!(
                "entry {} is about {}, not this request, its message or its document",
                entry.seq, entry.object
            )));
        }
        let recorded = ANSWER_ACTIONS
            .iter()
            .find(|(a, _)| *a == entry.action)
            .map(|(_, i)| *i);
        if let Some(recorded) = recorded {
            if entry.object == b.request.id && entry.actor == b.signer.email {
                if recorded != intent {
                    return Err(fail(format!(
                        "entry {} records the answer as {}, but the statement says otherwise",
                        entry.seq, entry.action
                    )));
                }
                answer.get_or_insert(entry);
            }
        }
    }
    answer.ok_or_else(|| fail("no entry records the signer's answer".into()))
}

/// A bundle with every field decoded, before the checks.
struct Decoded {
    request: RequestJson,
    request_id: [u8; 16],
    message: [u8; 16],
    document: [u8; 16],
    matter: Option<[u8; 16]>,
    requester: Party,
    requester_fingerprint: String,
    signer: Party,
    signer_fingerprint: String,
    statement: Vec<u8>,
    document_sha256: [u8; 32],
    entries: Vec<Vec<u8>>,
    attested_at: i64,
    attestation: [u8; 64],
    server_key: [u8; 32],
}

impl Decoded {
    fn parse(bytes: &[u8]) -> Result<Self, EvidenceError> {
        let fail = |s: &str| EvidenceError::Format(s.to_owned());
        if bytes.len() > MAX_BUNDLE_LEN {
            return Err(fail(
                "the file is larger than an evidence bundle may be (1 MiB)",
            ));
        }
        let json: BundleJson = serde_json::from_slice(bytes)
            .map_err(|e| EvidenceError::Format(format!("not an attache evidence bundle ({e})")))?;
        if json.format != EVIDENCE_FORMAT {
            return Err(EvidenceError::Format(format!(
                "unsupported format {:.40?} (this verifier reads {EVIDENCE_FORMAT:?})",
                json.format
            )));
        }
        if !matches!(
            json.request.status,
            SignatureStatus::Signed | SignatureStatus::Declined
        ) {
            return Err(fail("the request was not answered"));
        }
        let id16 = |s: &str, what: &str| -> Result<[u8; 16], EvidenceError> {
            from_hex(s)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| EvidenceError::Format(format!("the {what} is not 32 hex digits")))
        };
        let request_id = id16(&json.request.id, "request id")?;
        let message = id16(&json.request.message, "message id")?;
        let document = id16(&json.request.document, "document id")?;
        let matter = json
            .request
            .matter
            .as_deref()
            .map(|m| id16(m, "matter id"))
            .transpose()?;
        let party = |p: &PartyJson, who: &str| -> Result<Party, EvidenceError> {
            Ok(Party {
                email: p.email.clone(),
                keys: PublicKeys::parse_text(&p.public_keys).map_err(|_| {
                    EvidenceError::Format(format!("the {who}'s public keys do not parse"))
                })?,
            })
        };
        let requester = party(&json.requester, "requester")?;
        let signer = party(&json.signer, "signer")?;
        let b64 = |s: &str, what: &str| {
            STANDARD
                .decode(s)
                .map_err(|_| EvidenceError::Format(format!("the {what} is not base64")))
        };
        let statement = b64(&json.statement, "statement")?;
        let document_sha256: [u8; 32] = from_hex(&json.document_sha256)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| fail("the document digest is not 64 hex digits"))?;
        if json.audit.entries.len() > MAX_ATTESTED_ENTRIES {
            return Err(fail("too many audit entries"));
        }
        let entries = json
            .audit
            .entries
            .iter()
            .map(|e| b64(e, "audit entry"))
            .collect::<Result<Vec<_>, _>>()?;
        let attestation: [u8; 64] = b64(&json.audit.attestation, "attestation")?
            .try_into()
            .map_err(|_| fail("the attestation is not a 64-byte signature"))?;
        let server_key: [u8; 32] = b64(&json.audit.server_key, "server key")?
            .try_into()
            .map_err(|_| fail("the server key is not 32 bytes"))?;
        Ok(Self {
            request_id,
            message,
            document,
            matter,
            requester,
            requester_fingerprint: json.requester.fingerprint,
            signer,
            signer_fingerprint: json.signer.fingerprint,
            statement,
            document_sha256,
            entries,
            attested_at: json.audit.attested_at,
            attestation,
            server_key,
            request: json.request,
        })
    }
}

// The file format (docs/FORMAT.md §16). Versioned by `format`; unknown fields are refused.

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleJson {
    format: String,
    request: RequestJson,
    statement: String,
    requester: PartyJson,
    signer: PartyJson,
    document_sha256: String,
    audit: AuditJson,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestJson {
    id: String,
    requester: String,
    signer: String,
    message: String,
    document: String,
    matter: Option<String>,
    created_at: i64,
    deadline: i64,
    status: SignatureStatus,
    answered_at: Option<i64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartyJson {
    email: String,
    public_keys: String,
    fingerprint: String,
}

impl PartyJson {
    fn of(p: &Party) -> Self {
        Self {
            email: p.email.clone(),
            public_keys: p.keys.to_text(),
            fingerprint: p.keys.fingerprint().to_string(),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditJson {
    entries: Vec<String>,
    attested_at: i64,
    attestation: String,
    server_key: String,
}

#[cfg(test)]
mod tests {
    use ring::signature::{Ed25519KeyPair, KeyPair};
    use serde_json::{Value, json};

    use super::*;
    use crate::crypto::{Identity, SignatureStatement};

    const DEADLINE: i64 = 1_800_100_000;
    const DOC: &[u8] = b"%PDF-1.7 engagement letter";

    struct Fixture {
        ann: Identity,
        carol: Identity,
        server: Ed25519KeyPair,
        request: SignatureRequest,
    }

    fn fixture() -> Fixture {
        let request = SignatureRequest {
            id: "11".repeat(16),
            requester: "ann@firm.example".into(),
            signer: "carol@client.example".into(),
            message: "22".repeat(16),
            document: "33".repeat(16),
            matter: Some("44".repeat(16)),
            created_at: 1_800_000_000,
            deadline: DEADLINE,
            status: SignatureStatus::Signed,
            answered_at: Some(1_800_050_000),
            sealed_statement: None,
        };
        Fixture {
            ann: Identity::generate().unwrap(),
            carol: Identity::generate().unwrap(),
            server: Ed25519KeyPair::from_seed_unchecked(&[5; 32]).unwrap(),
            request,
        }
    }

    fn entry(seq: u64, at: i64, actor: &str, action: &str, object: &str) -> Vec<u8> {
        AuditEntry {
            seq,
            at,
            actor: actor.into(),
            addr: "127.0.0.1".into(),
            action: action.into(),
            object: object.into(),
            matter: Some("44".repeat(16)),
            prev: "0".repeat(64),
            matter_prev: Some("0".repeat(64)),
        }
        .to_stored()
    }

    fn statement(by: &Identity, intent: Intent) -> SignedStatement {
        SignatureStatement {
            request_id: [0x11; 16],
            document_sha256: sha256(&[DOC]),
            signer_email: "carol@client.example".into(),
            signer_key: [0; 32],
            time: 1_800_049_990,
            intent,
            typed_name: "Carol Client".into(),
            note: "agreed".into(),
        }
        .sign(by)
        .unwrap()
    }

    fn entries(answer_at: i64, action: &str) -> Vec<Vec<u8>> {
        vec![
            entry(
                3,
                1_800_000_000,
                "ann@firm.example",
                "signature.request",
                &"11".repeat(16),
            ),
            entry(
                5,
                1_800_040_000,
                "carol@client.example",
                "key_package.release",
                &"33".repeat(16),
            ),
            entry(
                9,
                answer_at,
                "carol@client.example",
                action,
                &"11".repeat(16),
            ),
        ]
    }

    fn id16(hex: &str) -> [u8; 16] {
        from_hex(hex).unwrap().try_into().unwrap()
    }

    /// The server's attestation of `request`, the parties' keys and `entries`, as the evidence
    /// route signs it.
    fn attest_as(
        f: &Fixture,
        request: &SignatureRequest,
        keys: (&PublicKeys, &PublicKeys),
        entries: &[Vec<u8>],
        at: i64,
    ) -> Vec<u8> {
        let hashes: Vec<[u8; 32]> = entries.iter().map(|e| sha256(&[e])).collect();
        let (requester_keys, signer_keys) = (keys.0.to_bytes(), keys.1.to_bytes());
        let matter = request.matter.as_deref().map(id16);
        let message = attestation_message(&Attestation {
            request_id: &id16(&request.id),
            requester: AttestedParty {
                email: &request.requester,
                public_keys: &requester_keys,
            },
            signer: AttestedParty {
                email: &request.signer,
                public_keys: &signer_keys,
            },
            message: &id16(&request.message),
            document: &id16(&request.document),
            matter: matter.as_ref(),
            created_at: request.created_at,
            deadline: request.deadline,
            status: request.status,
            answered_at: request.answered_at,
            attested_at: at,
            entry_hashes: &hashes,
        });
        f.server.sign(&message).as_ref().to_vec()
    }

    fn attest(f: &Fixture, entries: &[Vec<u8>], at: i64) -> Vec<u8> {
        attest_as(
            f,
            &f.request,
            (f.ann.public(), f.carol.public()),
            entries,
            at,
        )
    }

    fn bundle_with(f: &Fixture, s: &SignedStatement, entries: &[Vec<u8>]) -> Vec<u8> {
        let attestation = attest(f, entries, 1_800_060_000);
        bundle_attested(
            f,
            (f.ann.public(), f.carol.public()),
            s,
            entries,
            &attestation,
        )
    }

    /// A bundle of `f.request` with the given parties' keys, statement, entries and attestation.
    fn bundle_attested(
        f: &Fixture,
        keys: (&PublicKeys, &PublicKeys),
        s: &SignedStatement,
        entries: &[Vec<u8>],
        attestation: &[u8],
    ) -> Vec<u8> {
        let key: [u8; 32] = f.server.public_key().as_ref().try_into().unwrap();
        assemble(&EvidenceInput {
            request: &f.request,
            requester: Party {
                email: "ann@firm.example".into(),
                keys: *keys.0,
            },
            signer: Party {
                email: "carol@client.example".into(),
                keys: *keys.1,
            },
            statement: s,
            document_sha256: sha256(&[DOC]),
            audit_entries: entries,
            attested_at: 1_800_060_000,
            attestation,
            server_key: &key,
        })
        .unwrap()
    }

    fn good() -> (Fixture, Vec<u8>) {
        let f = fixture();
        let s = statement(&f.carol, Intent::Sign);
        let bundle = bundle_with(&f, &s, &entries(1_800_050_000, "signature.sign"));
        (f, bundle)
    }

    /// The bundle with one JSON field replaced.
    fn edited(bundle: &[u8], edit: impl Fn(&mut Value)) -> Vec<u8> {
        let mut v: Value = serde_json::from_slice(bundle).unwrap();
        edit(&mut v);
        serde_json::to_vec(&v).unwrap()
    }

    fn check(bundle: &[u8], doc: Option<[u8; 32]>) -> &'static str {
        verify(bundle, doc).unwrap_err().check()
    }

    #[test]
    fn a_good_bundle_proves_who_signed_what_and_when() {
        let (f, bundle) = good();
        let r = verify(&bundle, Some(sha256(&[DOC]))).unwrap();
        assert_eq!(r.signer, "carol@client.example");
        assert_eq!(r.signer_fingerprint, f.carol.fingerprint().to_string());
        assert_eq!(r.requester_fingerprint, f.ann.fingerprint().to_string());
        assert_eq!(r.intent, Intent::Sign);
        assert_eq!(r.document_sha256, sha256(&[DOC]));
        assert!(r.document_checked);
        assert_eq!((r.signed_at, r.recorded_at), (1_800_049_990, 1_800_050_000));
        assert_eq!(r.typed_name, "Carol Client");
        assert_eq!(r.audit_entries, 3);
        let key: [u8; 32] = f.server.public_key().as_ref().try_into().unwrap();
        assert_eq!(r.server_key_fingerprint, server_key_fingerprint(&key));
        assert!(!verify(&bundle, None).unwrap().document_checked);
    }

    #[test]
    fn a_declined_request_verifies_as_declined() {
        let mut f = fixture();
        f.request.status = SignatureStatus::Declined;
        let s = statement(&f.carol, Intent::Decline);
        let bundle = bundle_with(&f, &s, &entries(1_800_050_000, "signature.decline"));
        assert_eq!(verify(&bundle, None).unwrap().intent, Intent::Decline);
    }

    #[test]
    fn format_faults() {
        let (_, bundle) = good();
        assert_eq!(check(b"not json", None), "format");
        assert_eq!(check(&vec![b' '; MAX_BUNDLE_LEN + 1], None), "format");
        for edit in [
            &(|v: &mut Value| v["format"] = json!("attache-evidence v2")) as &dyn Fn(&mut Value),
            &|v| v["extra"] = json!(1),
            &|v| v["request"]["status"] = json!("pending"),
            &|v| v["request"]["id"] = json!("zz"),
            &|v| v["statement"] = json!("***"),
            &|v| v["signer"]["public_keys"] = json!("attache-public-v1:00"),
            &|v| v["document_sha256"] = json!("00"),
            &|v| v["audit"]["attestation"] = json!("AAAA"),
            &|v| v["audit"]["server_key"] = json!("AAAA"),
            &|v| v["audit"]["entries"][0] = json!("!"),
        ] {
            let e = verify(&edited(&bundle, edit), None).unwrap_err();
            assert!(matches!(e, EvidenceError::Format(_)), "{e}");
        }
    }

    #[test]
    fn party_and_fingerprint_faults() {
        let (f, bundle) = good();
        let b = edited(&bundle, |v| {
            v["request"]["signer"] = json!("eve@example.com")
        });
        assert_eq!(check(&b, None), "parties");
        let b = edited(&bundle, |v| {
            v["requester"]["fingerprint"] = json!("00000 00000")
        });
        assert_eq!(check(&b, None), "requester-fingerprint");
        let b = edited(&bundle, |v| {
            v["signer"]["fingerprint"] = json!("00000 00000")
        });
        assert_eq!(check(&b, None), "signer-fingerprint");
        // Another key for the signer, with its matching fingerprint: the statement is not theirs.
        let eve = Identity::generate().unwrap();
        let b = edited(&bundle, |v| {
            v["signer"]["public_keys"] = json!(eve.public().to_text());
            v["signer"]["fingerprint"] = json!(eve.fingerprint().to_string());
        });
        assert_eq!(
            verify(&b, None),
            Err(EvidenceError::StatementSigner(
                "the statement is signed by another key than the signer's"
            ))
        );
        // build() verifies what it assembles.
        let s = statement(&f.carol, Intent::Sign);
        let late = entries(DEADLINE + 5, "signature.sign");
        let attestation = attest(&f, &late, 1_800_060_000);
        let key: [u8; 32] = f.server.public_key().as_ref().try_into().unwrap();
        let built = build(&EvidenceInput {
            request: &f.request,
            requester: Party {
                email: "ann@firm.example".into(),
                keys: *f.ann.public(),
            },
            signer: Party {
                email: "carol@client.example".into(),
                keys: *f.carol.public(),
            },
            statement: &s,
            document_sha256: sha256(&[DOC]),
            audit_entries: &late,
            attested_at: 1_800_060_000,
            attestation: &attestation,
            server_key: &key,
        });
        assert_eq!(built.unwrap_err().check(), "deadline");
    }

    /// The gap the first attestation left, closed: it binds the parties' keys, so a bundle
    /// rebuilt around another key pair (a statement signed by it, its keys and matching
    /// fingerprint in the bundle) no longer verifies: only the server could attest those keys.
    #[test]
    fn a_bundle_rebuilt_around_another_key_pair_fails_the_attestation() {
        let (f, bundle) = good();
        let eve = Identity::generate().unwrap();
        let forged = statement(&f.carol, Intent::Sign)
            .unverified_statement()
            .clone()
            .sign(&eve)
            .unwrap();
        let rebuilt = |v: &mut Value| {
            v["signer"]["public_keys"] = json!(eve.public().to_text());
            v["signer"]["fingerprint"] = json!(eve.fingerprint().to_string());
            v["statement"] = json!(STANDARD.encode(forged.to_bytes()));
        };
        assert_eq!(
            verify(&edited(&bundle, rebuilt), None),
            Err(EvidenceError::AttestationSignature)
        );
        // The requester's keys swapped too: the same.
        let mallory = Identity::generate().unwrap();
        let b = edited(&bundle, |v| {
            rebuilt(v);
            v["requester"]["public_keys"] = json!(mallory.public().to_text());
            v["requester"]["fingerprint"] = json!(mallory.fingerprint().to_string());
        });
        assert_eq!(verify(&b, None), Err(EvidenceError::AttestationSignature));
        // Only the requester's keys swapped (no statement involves them): caught here too.
        let b = edited(&bundle, |v| {
            v["requester"]["public_keys"] = json!(mallory.public().to_text());
            v["requester"]["fingerprint"] = json!(mallory.fingerprint().to_string());
        });
        assert_eq!(verify(&b, None), Err(EvidenceError::AttestationSignature));
        // What makes such a bundle verify is the server's attestation of those keys, and the
        // report then names them: the attestation, not the bundle's author, vouches for them.
        let entries = entries(1_800_050_000, "signature.sign");
        let attestation = attest_as(
            &f,
            &f.request,
            (f.ann.public(), eve.public()),
            &entries,
            1_800_060_000,
        );
        let b = bundle_attested(
            &f,
            (f.ann.public(), eve.public()),
            &forged,
            &entries,
            &attestation,
        );
        assert_eq!(
            verify(&b, None).unwrap().signer_fingerprint,
            eve.fingerprint().to_string()
        );
    }

    /// Every field of the request and both parties' emails are attested: changing one fails
    /// `attestation-signature`, unless an earlier check names it first (the order of §16).
    #[test]
    fn request_fields_and_parties_are_bound_by_the_attestation() {
        let (f, bundle) = good();
        for (field, edit) in [
            (
                "deadline moved later",
                &(|v: &mut Value| v["request"]["deadline"] = json!(DEADLINE + 30 * 86_400))
                    as &dyn Fn(&mut Value),
            ),
            ("deadline moved earlier", &|v| {
                v["request"]["deadline"] = json!(DEADLINE - 1)
            }),
            ("created_at", &|v| {
                v["request"]["created_at"] = json!(1_799_000_000)
            }),
            ("message", &|v| {
                v["request"]["message"] = json!("66".repeat(16))
            }),
            ("document", &|v| {
                v["request"]["document"] = json!("77".repeat(16))
            }),
            ("matter", &|v| {
                v["request"]["matter"] = json!("88".repeat(16))
            }),
            ("matter removed", &|v| v["request"]["matter"] = json!(null)),
            ("answered_at", &|v| {
                v["request"]["answered_at"] = json!(1_800_050_001)
            }),
            ("answered_at removed", &|v| {
                v["request"]["answered_at"] = json!(null)
            }),
            ("requester email, both places", &|v| {
                v["request"]["requester"] = json!("bob@firm.example");
                v["requester"]["email"] = json!("bob@firm.example");
            }),
        ] {
            assert_eq!(
                verify(&edited(&bundle, edit), None),
                Err(EvidenceError::AttestationSignature),
                "{field}"
            );
        }
        // Fields an earlier check already covers keep their names.
        let first = [
            (
                "signer email, both places",
                "statement-signer",
                &(|v: &mut Value| {
                    v["request"]["signer"] = json!("eve@client.example");
                    v["signer"]["email"] = json!("eve@client.example");
                }) as &dyn Fn(&mut Value),
            ),
            ("request id", "statement-request", &|v| {
                v["request"]["id"] = json!("12".repeat(16))
            }),
            ("status", "statement-intent", &|v| {
                v["request"]["status"] = json!("declined")
            }),
            ("requester email, request only", "parties", &|v| {
                v["request"]["requester"] = json!("bob@firm.example")
            }),
            ("message id not hex", "format", &|v| {
                v["request"]["message"] = json!("zz")
            }),
        ];
        for (field, name, edit) in first {
            assert_eq!(check(&edited(&bundle, edit), None), name, "{field}");
        }
        // Under a valid attestation of a request without a matter, the bundle verifies.
        let mut f = f;
        f.request.matter = None;
        let s = statement(&f.carol, Intent::Sign);
        assert!(
            verify(
                &bundle_with(&f, &s, &entries(1_800_050_000, "signature.sign")),
                None
            )
            .is_ok()
        );
    }

    #[test]
    fn statement_faults() {
        let (f, bundle) = good();
        // One bit of the signed statement flipped.
        let b = edited(&bundle, |v| {
            let mut s = STANDARD.decode(v["statement"].as_str().unwrap()).unwrap();
            let n = s.len();
            s[n - 70] ^= 1;
            v["statement"] = json!(STANDARD.encode(s));
        });
        assert_eq!(
            verify(&b, None),
            Err(EvidenceError::StatementSignature(
                StatementError::BadSignature
            ))
        );
        // A statement signed by another key.
        let eve = Identity::generate().unwrap();
        let forged = statement(&eve, Intent::Sign);
        let b = edited(&bundle, |v| {
            v["statement"] = json!(STANDARD.encode(forged.to_bytes()))
        });
        assert_eq!(check(&b, None), "statement-signer");
        // The signer's statement for another request.
        let mut other = statement(&f.carol, Intent::Sign)
            .unverified_statement()
            .clone();
        other.request_id = [0x12; 16];
        let other = other.sign(&f.carol).unwrap();
        let b = edited(&bundle, |v| {
            v["statement"] = json!(STANDARD.encode(other.to_bytes()))
        });
        assert_eq!(check(&b, None), "statement-request");
        // Another email in the statement.
        let mut other = statement(&f.carol, Intent::Sign)
            .unverified_statement()
            .clone();
        other.signer_email = "someone@else.example".into();
        let other = other.sign(&f.carol).unwrap();
        let b = edited(&bundle, |v| {
            v["statement"] = json!(STANDARD.encode(other.to_bytes()))
        });
        assert_eq!(
            verify(&b, None),
            Err(EvidenceError::StatementSigner(
                "the statement names another signer's email"
            ))
        );
        // A decline presented as a signature.
        let decline = statement(&f.carol, Intent::Decline);
        let b = edited(&bundle, |v| {
            v["statement"] = json!(STANDARD.encode(decline.to_bytes()))
        });
        assert_eq!(
            verify(&b, None),
            Err(EvidenceError::StatementIntent {
                statement: "decline",
                status: "signed"
            })
        );
    }

    #[test]
    fn document_faults() {
        let (_, bundle) = good();
        let b = edited(&bundle, |v| v["document_sha256"] = json!("ab".repeat(32)));
        assert_eq!(verify(&b, None), Err(EvidenceError::DocumentDigest));
        let other = sha256(&[b"another document"]);
        assert_eq!(
            verify(&bundle, Some(other)),
            Err(EvidenceError::DocumentFile {
                expected: to_hex(&sha256(&[DOC])),
                actual: to_hex(&other)
            })
        );
    }

    #[test]
    fn attestation_faults() {
        let (_, bundle) = good();
        for edit in [
            &(|v: &mut Value| v["audit"]["attested_at"] = json!(1)) as &dyn Fn(&mut Value),
            &|v| {
                v["audit"]["entries"].as_array_mut().unwrap().remove(1);
            },
            &|v| v["audit"]["server_key"] = json!(STANDARD.encode([7u8; 32])),
            &|v| {
                let mut a = STANDARD
                    .decode(v["audit"]["attestation"].as_str().unwrap())
                    .unwrap();
                a[0] ^= 1;
                v["audit"]["attestation"] = json!(STANDARD.encode(a));
            },
            &|v| {
                let e = entry(
                    9,
                    1,
                    "carol@client.example",
                    "signature.sign",
                    &"11".repeat(16),
                );
                v["audit"]["entries"][2] = json!(STANDARD.encode(e));
            },
        ] {
            assert_eq!(
                verify(&edited(&bundle, edit), None),
                Err(EvidenceError::AttestationSignature)
            );
        }
    }

    #[test]
    fn audit_entry_faults_under_a_valid_attestation() {
        let f = fixture();
        let s = statement(&f.carol, Intent::Sign);
        let mut foreign = entries(1_800_050_000, "signature.sign");
        foreign.push(entry(
            12,
            1_800_050_001,
            "ann@firm.example",
            "item.read",
            &"55".repeat(16),
        ));
        assert_eq!(check(&bundle_with(&f, &s, &foreign), None), "audit-entries");
        let unanswered = entries(1_800_050_000, "signature.remind");
        let e = verify(&bundle_with(&f, &s, &unanswered), None).unwrap_err();
        assert_eq!(
            e,
            EvidenceError::AuditEntries("no entry records the signer's answer".into())
        );
        let declined = entries(1_800_050_000, "signature.decline");
        assert_eq!(
            check(&bundle_with(&f, &s, &declined), None),
            "audit-entries"
        );
        let mut reordered = entries(1_800_050_000, "signature.sign");
        reordered.swap(0, 1);
        assert_eq!(
            check(&bundle_with(&f, &s, &reordered), None),
            "audit-entries"
        );
        let mut by_other = entries(1_800_050_000, "signature.sign");
        by_other[2] = entry(
            9,
            1_800_050_000,
            "ann@firm.example",
            "signature.sign",
            &"11".repeat(16),
        );
        assert_eq!(
            check(&bundle_with(&f, &s, &by_other), None),
            "audit-entries"
        );
    }

    #[test]
    fn an_answer_after_the_deadline_fails() {
        let f = fixture();
        let s = statement(&f.carol, Intent::Sign);
        let late = entries(DEADLINE + 1, "signature.sign");
        assert_eq!(
            verify(&bundle_with(&f, &s, &late), None),
            Err(EvidenceError::Deadline {
                answered: format_utc(DEADLINE + 1),
                deadline: format_utc(DEADLINE)
            })
        );
        let on_time = entries(DEADLINE, "signature.sign");
        assert!(verify(&bundle_with(&f, &s, &on_time), None).is_ok());
    }

    #[test]
    fn digests_of_readers_and_writes_agree() {
        let mut w = DigestWriter::new();
        w.write_all(DOC).unwrap();
        assert_eq!(w.written(), DOC.len() as u64);
        assert_eq!(w.finish(), sha256(&[DOC]));
        assert_eq!(DigestWriter::digest_of(DOC).unwrap(), sha256(&[DOC]));
    }
}
