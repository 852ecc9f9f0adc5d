//! Parsing what people paste: invite URLs (`https://HOST:PORT/i/ID#SECRET`), server origins and
//! certificate pins (`sha256:HEX`). Pure: no IO.

use std::fmt;

use reqwest::Url;

use super::ClientError;
use crate::wire::{from_hex, to_hex};

/// A parsed invite URL. Holds the invite secret: no `Display`, and `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct InviteLink {
    /// The server's origin, such as `https://127.0.0.1:8443`.
    pub origin: String,
    /// The invite id (the last path segment).
    pub id: String,
    /// The invite secret (the URL fragment).
    pub secret: String,
}

impl InviteLink {
    /// Parses `https://HOST[:PORT]/i/ID#SECRET`.
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        let parsed = Url::parse(url.trim()).map_err(|_| ClientError::InvalidInvite("not a URL"))?;
        if parsed.scheme() != "https" {
            return Err(ClientError::InvalidInvite(
                "the URL must start with https://",
            ));
        }
        let segments: Vec<&str> = parsed
            .path_segments()
            .map(|s| s.collect())
            .unwrap_or_default();
        let id = match segments.as_slice() {
            ["i", id] if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                (*id).to_owned()
            }
            _ => return Err(ClientError::InvalidInvite("the path must be /i/ID")),
        };
        let secret = parsed
            .fragment()
            .filter(|f| !f.is_empty())
            .ok_or(ClientError::InvalidInvite(
                "the secret after # is missing (copy the whole link)",
            ))?
            .to_owned();
        Ok(Self {
            origin: origin_of(&parsed)?,
            id,
            secret,
        })
    }
}

impl fmt::Debug for InviteLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InviteLink")
            .field("origin", &self.origin)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The normalised origin (`https://host[:port]`, default port omitted) of a server URL.
pub fn normalize_origin(url: &str) -> Result<String, ClientError> {
    let parsed = Url::parse(url.trim())
        .map_err(|_| ClientError::Profile(format!("{url:?} is not a server URL")))?;
    origin_of(&parsed)
}

fn origin_of(url: &Url) -> Result<String, ClientError> {
    let origin = url.origin();
    if !origin.is_tuple() || url.scheme() != "https" {
        return Err(ClientError::InvalidInvite("the server URL must use https"));
    }
    Ok(origin.ascii_serialization())
}

/// The SHA-256 of a server's DER certificate, written `sha256:HEX`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertPin(pub [u8; 32]);

impl CertPin {
    /// Parses `sha256:HEX` (64 hex digits; colons between bytes are allowed; the prefix may be
    /// omitted).
    pub fn parse(text: &str) -> Result<Self, ClientError> {
        let bad = || {
            ClientError::Profile(format!(
                "{text:?} is not a certificate fingerprint (expected sha256: and 64 hex digits)"
            ))
        };
        let t = text.trim();
        let hex = t
            .strip_prefix("sha256:")
            .or_else(|| t.strip_prefix("SHA256:"))
            .unwrap_or(t);
        let hex: String = hex.chars().filter(|&c| c != ':').collect();
        let bytes = from_hex(&hex.to_ascii_lowercase()).ok_or_else(bad)?;
        Ok(Self(bytes.try_into().map_err(|_| bad())?))
    }

    /// The pin of a DER certificate.
    pub fn of_certificate(der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> String {
        to_hex(&self.0)
    }
}

impl fmt::Display for CertPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for CertPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertPin({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_invite_urls() {
        let link = InviteLink::parse("https://127.0.0.1:8443/i/0a1b2c#c2VjcmV0").unwrap();
        assert_eq!(link.origin, "https://127.0.0.1:8443");
        assert_eq!(link.id, "0a1b2c");
        assert_eq!(link.secret, "c2VjcmV0");
        let link = InviteLink::parse("https://Example.COM:443/i/ab#s").unwrap();
        assert_eq!(link.origin, "https://example.com");
        assert!(!format!("{link:?}").contains("\"s\""));
    }

    #[test]
    fn refuses_bad_invite_urls() {
        for (url, why) in [
            ("http://h:1/i/ab#s", "https"),
            ("https://h:1/i/ab", "secret"),
            ("https://h:1/i/ab#", "secret"),
            ("https://h:1/x/ab#s", "path"),
            ("https://h:1/i/a/b#s", "path"),
            ("https://h:1/i/a.b#s", "path"),
            ("not a url", "URL"),
        ] {
            let e = InviteLink::parse(url).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
        }
    }

    #[test]
    fn normalizes_origins() {
        assert_eq!(
            normalize_origin("https://127.0.0.1:8443/").unwrap(),
            "https://127.0.0.1:8443"
        );
        assert_eq!(
            normalize_origin("https://[::1]:9/x").unwrap(),
            "https://[::1]:9"
        );
        assert!(normalize_origin("http://a:1").is_err());
    }

    #[test]
    fn parses_certificate_pins() {
        let hex = "ab".repeat(32);
        let pin = CertPin::parse(&format!("sha256:{hex}")).unwrap();
        assert_eq!(pin.0, [0xab; 32]);
        assert_eq!(pin.to_string(), format!("sha256:{hex}"));
        assert_eq!(CertPin::parse(&hex.to_uppercase()).unwrap(), pin);
        let colons: Vec<String> = (0..32).map(|_| "AB".to_owned()).collect();
        assert_eq!(CertPin::parse(&colons.join(":")).unwrap(), pin);
        assert!(CertPin::parse("sha256:abcd").is_err());
        assert!(CertPin::parse(&format!("sha256:{}", "zz".repeat(32))).is_err());
    }
}
