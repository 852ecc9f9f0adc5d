//! TLS: the certificate (configured PEM, or a self-signed one made on first start), the rustls
//! configuration on the ring provider, and reloading on SIGHUP.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{Config, ServerError, sha256};

/// A loaded certificate and the rustls configuration serving it.
pub(crate) struct Loaded {
    pub(crate) config: Arc<ServerConfig>,
    /// Lower-case hex SHA-256 of the DER leaf certificate.
    pub(crate) fingerprint: String,
}

/// The certificate and key files in use.
pub(crate) fn paths(config: &Config) -> (PathBuf, PathBuf) {
    match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => (
            config.keys.join("tls-cert.pem"),
            config.keys.join("tls-key.pem"),
        ),
    }
}

/// Loads the configured certificate, or creates (once) and loads the self-signed one.
pub(crate) fn load_or_create(config: &Config, listen_ip: IpAddr) -> Result<Loaded, ServerError> {
    if config.tls_cert.is_some() != config.tls_key.is_some() {
        return Err(ServerError::Config(
            "set both --tls-cert and --tls-key, or neither".into(),
        ));
    }
    let (cert, key) = paths(config);
    if config.tls_cert.is_none() && !cert.exists() {
        create_self_signed(&config.keys, &cert, &key, listen_ip)?;
    }
    load(&cert, &key, config.tls12)
}

/// Reads a PEM certificate chain and key and builds the rustls configuration.
pub(crate) fn load(cert: &Path, key: &Path, tls12: bool) -> Result<Loaded, ServerError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ServerError::Tls(format!("cannot read {}: {e}", cert.display())))?;
    let leaf = certs
        .first()
        .ok_or_else(|| ServerError::Tls(format!("no certificate in {}", cert.display())))?;
    let fingerprint = crate::wire::to_hex(&sha256(leaf.as_ref()));
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ServerError::Tls(format!("cannot read the key {}: {e}", key.display())))?;
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let mut sc =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .map_err(|e| ServerError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| ServerError::Tls(format!("certificate and key do not fit: {e}")))?;
    sc.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // With TLS 1.2 enabled, the server's suite order (AEAD, forward-secret suites first) wins
    // over the client's; TLS 1.3 suites are all strong.
    sc.ignore_client_order = true;
    Ok(Loaded {
        config: Arc::new(sc),
        fingerprint,
    })
}

fn create_self_signed(keys: &Path, cert: &Path, key: &Path, ip: IpAddr) -> Result<(), ServerError> {
    fs::create_dir_all(keys)?;
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
        names.push(ip.to_string());
    }
    let generated = rcgen::generate_simple_self_signed(names)
        .map_err(|e| ServerError::Tls(format!("cannot create a certificate: {e}")))?;
    write_private(key, generated.key_pair.serialize_pem().as_bytes())?;
    write_private(cert, generated.cert.pem().as_bytes())?;
    tracing::info!(path = %cert.display(), "created a self-signed certificate");
    Ok(())
}

/// Writes a file readable only by its owner (mode 0600), durably.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ServerError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}
