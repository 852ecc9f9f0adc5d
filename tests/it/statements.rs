//! Signature statements: sign, encode, parse, verify, and every refusal.

use attache::crypto::{Intent, SignatureStatement, SignedStatement, StatementError};
use attache::wire::DecodeError;

use crate::support::identity;

fn statement() -> SignatureStatement {
    SignatureStatement {
        request_id: [3; 16],
        document_sha256: [4; 32],
        signer_email: "client@example.com".into(),
        signer_key: [0; 32],
        time: 1_795_000_000,
        intent: Intent::Sign,
        typed_name: "Jane Q. Client".into(),
        note: String::new(),
    }
}

#[test]
fn sign_parse_verify() {
    let signer = identity(20);
    let signed = statement().sign(&signer).unwrap();
    let bytes = signed.to_bytes();
    let parsed = SignedStatement::parse(&bytes).unwrap();
    let s = parsed.verify(signer.public(), &[4; 32]).unwrap();
    assert_eq!(s.signer_key, signer.public().ed25519);
    assert_eq!(s.intent, Intent::Sign);
    assert_eq!(s.typed_name, "Jane Q. Client");
    assert_eq!(parsed, signed);

    let declined = SignatureStatement {
        intent: Intent::Decline,
        note: "wrong figures".into(),
        ..statement()
    }
    .sign(&signer)
    .unwrap();
    let parsed = SignedStatement::parse(&declined.to_bytes()).unwrap();
    assert_eq!(
        parsed.verify(signer.public(), &[4; 32]).unwrap().intent,
        Intent::Decline
    );
}

#[test]
fn another_document_or_another_key_is_refused() {
    let signer = identity(20);
    let parsed = SignedStatement::parse(&statement().sign(&signer).unwrap().to_bytes()).unwrap();
    assert_eq!(
        parsed.verify(signer.public(), &[5; 32]).unwrap_err(),
        StatementError::DocumentMismatch
    );
    assert_eq!(
        parsed.verify(identity(21).public(), &[4; 32]).unwrap_err(),
        StatementError::UnexpectedSigner
    );
}

#[test]
fn every_altered_byte_is_refused() {
    let bytes = statement().sign(&identity(20)).unwrap().to_bytes();
    for pos in 0..bytes.len() {
        let mut t = bytes.clone();
        t[pos] ^= 0x01;
        let e = SignedStatement::parse(&t).unwrap_err();
        assert!(
            matches!(
                e,
                StatementError::BadSignature | StatementError::Malformed(_)
            ),
            "byte {pos}: {e:?}"
        );
    }
    // The version byte and the intent byte are refused as unsupported, not as bad signatures.
    let mut t = bytes.clone();
    t[4] = 2;
    assert_eq!(
        SignedStatement::parse(&t).unwrap_err(),
        StatementError::Malformed(DecodeError::Unsupported("statement version"))
    );
}

#[test]
fn truncated_at_every_length() {
    let bytes = statement().sign(&identity(20)).unwrap().to_bytes();
    for len in 0..bytes.len() {
        let e = SignedStatement::parse(&bytes[..len]).unwrap_err();
        assert!(
            matches!(e, StatementError::Malformed(DecodeError::Truncated(_))),
            "{len}: {e:?}"
        );
    }
}

#[test]
fn over_long_fields() {
    let signer = identity(20);
    let cases = [
        (
            SignatureStatement {
                signer_email: "e".repeat(321),
                ..statement()
            },
            "signer email",
            321,
            320,
        ),
        (
            SignatureStatement {
                typed_name: "n".repeat(257),
                ..statement()
            },
            "typed name",
            257,
            256,
        ),
        (
            SignatureStatement {
                note: "x".repeat(4097),
                ..statement()
            },
            "note",
            4097,
            4096,
        ),
    ];
    for (s, field, len, max) in cases {
        assert_eq!(
            s.sign(&signer).unwrap_err(),
            StatementError::FieldTooLong { field, len, max }
        );
    }
}
