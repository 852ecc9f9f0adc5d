//! TLS to an Attache server: rustls on ring, accepting exactly the pinned certificate.
//!
//! A server uses a self-signed certificate by default, so there is no chain to a public root to
//! check. Instead the profile pins the SHA-256 of the server's DER certificate and the verifier
//! accepts that certificate and no other (names and validity dates are not consulted: the pin
//! is stronger than both). The handshake signature is still verified with ring, so only the
//! holder of the pinned certificate's private key can complete it. Without a pin (the first
//! `join`, trust on first use) the verifier accepts any certificate and records which.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use super::{CertPin, ClientError};

/// A certificate verifier that accepts exactly one certificate, or (without a pin) any
/// certificate, remembering the one presented.
#[derive(Debug)]
pub(crate) struct DangerPinnedCertVerifier {
    pin: Option<CertPin>,
    presented: Mutex<Option<CertPin>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl DangerPinnedCertVerifier {
    /// A verifier for `pin`; `None` accepts any certificate (trust on first use).
    pub(crate) fn new(pin: Option<CertPin>) -> Self {
        Self {
            pin,
            presented: Mutex::new(None),
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }

    /// The certificate the server presented last, if a handshake got that far.
    pub(crate) fn presented(&self) -> Option<CertPin> {
        *self
            .presented
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Decides on a presented DER certificate.
    fn check(&self, der: &[u8]) -> Result<(), rustls::Error> {
        let presented = CertPin::of_certificate(der);
        *self
            .presented
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(presented);
        match self.pin {
            Some(pin) if pin != presented => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
            _ => Ok(()),
        }
    }
}

impl ServerCertVerifier for DangerPinnedCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity.as_ref())?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A rustls client configuration on ring that trusts only `verifier`'s certificate, offering
/// h2 and HTTP/1.1.
pub(crate) fn client_config(
    verifier: Arc<DangerPinnedCertVerifier>,
) -> Result<rustls::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider as Arc<CryptoProvider>)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Protocol(format!("tls configuration: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_pinned_certificate() {
        let cert = b"a DER certificate";
        let pinned = DangerPinnedCertVerifier::new(Some(CertPin::of_certificate(cert)));
        assert!(pinned.check(cert).is_ok());
        assert_eq!(pinned.presented(), Some(CertPin::of_certificate(cert)));
        assert!(matches!(
            pinned.check(b"another certificate"),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure
            ))
        ));
        assert_eq!(
            pinned.presented(),
            Some(CertPin::of_certificate(b"another certificate"))
        );
    }

    #[test]
    fn without_a_pin_records_what_it_saw() {
        let tofu = DangerPinnedCertVerifier::new(None);
        assert_eq!(tofu.presented(), None);
        assert!(tofu.check(b"whatever").is_ok());
        assert_eq!(tofu.presented(), Some(CertPin::of_certificate(b"whatever")));
    }

    #[test]
    fn builds_a_config() {
        let config = client_config(Arc::new(DangerPinnedCertVerifier::new(None))).unwrap();
        assert_eq!(config.alpn_protocols[0], b"h2");
        assert!(
            !DangerPinnedCertVerifier::new(None)
                .supported_verify_schemes()
                .is_empty()
        );
    }
}
