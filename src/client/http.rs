//! The HTTPS transport: one pinned reqwest client, URL building and turning refusals
//! ([`ErrorBody`]) into [`ClientError::Api`]. Knows nothing of sessions or items.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::blocking::{RequestBuilder, Response};
use serde::de::DeserializeOwned;

use super::tls::{DangerPinnedCertVerifier, client_config};
use super::{CertPin, ClientError};
use crate::wire::api::{API_PREFIX, ErrorBody};

/// How long a JSON request may take, start to finish.
const JSON_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one upload request (up to 128 chunks, about 8 MiB) may take.
pub(crate) const UPLOAD_TIMEOUT: Duration = Duration::from_secs(300);
/// The largest error or JSON body read into memory.
const MAX_JSON: u64 = 64 << 20;

/// A connection to one server, pinned to one certificate (or, without a pin, recording the
/// first one seen).
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::blocking::Client,
    origin: String,
    pin: Option<CertPin>,
    verifier: Arc<DangerPinnedCertVerifier>,
}

impl Http {
    /// A client for `origin` (`https://host:port`).
    pub(crate) fn new(origin: &str, pin: Option<CertPin>) -> Result<Self, ClientError> {
        let verifier = Arc::new(DangerPinnedCertVerifier::new(pin));
        let client = reqwest::blocking::Client::builder()
            .use_preconfigured_tls(client_config(verifier.clone())?)
            // Streams of chunks may take long; JSON requests set their own timeout below.
            .timeout(None)
            .connect_timeout(Duration::from_secs(30))
            .user_agent(concat!("attache/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            origin: origin.to_owned(),
            pin,
            verifier,
        })
    }

    /// The certificate the server presented, once a request reached it.
    pub(crate) fn presented_certificate(&self) -> Option<CertPin> {
        self.verifier.presented()
    }

    /// A request to `/v1{path}`, with a bearer token if given.
    pub(crate) fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> RequestBuilder {
        let builder = self
            .client
            .request(method, format!("{}{API_PREFIX}{path}", self.origin));
        match token {
            Some(t) => builder.bearer_auth(t),
            None => builder,
        }
    }

    /// A JSON request with the JSON timeout.
    pub(crate) fn json_request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> RequestBuilder {
        self.request(method, path, token)
            .timeout(JSON_TIMEOUT)
            .header(reqwest::header::ACCEPT, "application/json")
    }

    /// Sends a request; any non-success status becomes [`ClientError::Api`].
    pub(crate) fn send(&self, request: RequestBuilder) -> Result<Response, ClientError> {
        let response = request.send().map_err(|e| self.transport_error(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let mut body = Vec::new();
        // The refusal is what matters; a body cut short only loses its explanation.
        let _ = response.take(MAX_JSON).read_to_end(&mut body);
        Err(match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) if status.as_u16() == 410 && e.error == "access_expired" => {
                ClientError::AccessExpired {
                    on: expiry_date(&e.message),
                }
            }
            Ok(e) => ClientError::Api {
                status: status.as_u16(),
                code: e.error,
                message: e.message,
            },
            Err(_) => ClientError::Api {
                status: status.as_u16(),
                code: "http".into(),
                message: status
                    .canonical_reason()
                    .unwrap_or("unexpected status")
                    .to_lowercase(),
            },
        })
    }

    /// Maps a transport failure, naming a changed certificate when that was the cause.
    fn transport_error(&self, e: reqwest::Error) -> ClientError {
        match (self.pin, self.verifier.presented()) {
            (Some(pinned), Some(presented)) if pinned != presented => {
                ClientError::CertificateChanged {
                    pinned: pinned.hex(),
                    presented: presented.hex(),
                }
            }
            _ => ClientError::Transport(e),
        }
    }
}

/// The date in the server's `access expired on DATE` message, or the whole message (bounded)
/// if it is worded otherwise.
fn expiry_date(message: &str) -> String {
    let date = message
        .strip_prefix("access expired on ")
        .unwrap_or(message);
    date.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// Reads a JSON body.
pub(crate) fn read_json<T: DeserializeOwned>(response: Response) -> Result<T, ClientError> {
    let mut body = Vec::new();
    response
        .take(MAX_JSON)
        .read_to_end(&mut body)
        .map_err(|e| ClientError::io("cannot read the server's answer", e))?;
    serde_json::from_slice(&body).map_err(|e| ClientError::Protocol(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::expiry_date;

    #[test]
    fn expiry_dates_come_from_the_server_message() {
        assert_eq!(
            expiry_date("access expired on 2026-12-31 23:59:59 UTC"),
            "2026-12-31 23:59:59 UTC"
        );
        assert_eq!(expiry_date("gone\n"), "gone");
    }
}
