//! Attache: end-to-end encrypted document and message exchange for law firms.
//!
//! The library seals documents and messages on the sender's machine and opens them on the
//! reader's; a server in between only ever stores ciphertext.
//!
//! # Example
//!
//! ```
//! use attache::crypto::{
//!     Identity, Metadata, Parallelism, SealedChunks, open_item, open_key_package, seal_item,
//!     seal_key_package,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let attorney = Identity::generate()?;
//! let client = Identity::generate()?;
//!
//! // The attorney seals a document and wraps its key for the client.
//! let metadata = Metadata { file_name: "engagement-letter.pdf".into(), ..Default::default() };
//! let mut chunks = SealedChunks::default();
//! let sealed = seal_item(&attorney, &metadata, &b"%PDF-1.7 ..."[..], &mut chunks, Parallelism::All)?;
//! let package = seal_key_package(&sealed.content_key, &sealed.preamble.item_id(), client.public())?;
//!
//! // The client opens the key package, then the item, checking the attorney's seal.
//! let key = open_key_package(&package, &client, &sealed.preamble.item_id())?;
//! let mut plaintext = Vec::new();
//! let opened = open_item(
//!     &key,
//!     &sealed.preamble,
//!     &sealed.manifest,
//!     attorney.public(),
//!     &chunks.concatenated()[..],
//!     &mut plaintext,
//!     Parallelism::All,
//! )?;
//! assert_eq!(plaintext, b"%PDF-1.7 ...");
//! assert_eq!(opened.metadata.file_name, "engagement-letter.pdf");
//! # Ok(())
//! # }
//! ```
//!
//! # Code map
//!
//! - [`wire`]: the big-endian codec and hex. Pure; imports nothing else of the crate.
//! - [`crypto`]: identities and fingerprints ([`crypto::Identity`]), key files
//!   ([`crypto::seal_key_file`]), sealed items ([`crypto::seal_item`], [`crypto::ItemOpener`],
//!   [`crypto::Manifest`]), key packages ([`crypto::seal_key_package`]), signature statements
//!   ([`crypto::SignatureStatement`]), grant statements ([`crypto::SignedGrant`]), audit-log
//!   verification ([`crypto::audit`]) and evidence bundles ([`crypto::evidence`]). Pure: imports
//!   only `wire`.
//! - `client` (feature `client`): the HTTPS client library, the profile, the legal workflows
//!   and the unlocked-key agent (`client::agent`). `server`, `storage` and `mail` (feature
//!   `server`): the server, its sled store and its notice outbox.
//! - [`container`]: a sealed item with its key packages in one local file (`attache seal`).
//!
//! # Invariants
//!
//! - `wire` imports nothing of the crate; `crypto` imports only `wire`; neither does network
//!   IO, async, or reads the clock (time is a parameter). `tests/it/tidy.rs` checks this.
//! - Plaintext leaves the opener only after its chunk matched the signed manifest and passed
//!   AES-GCM authentication; the key commitment is checked before any chunk is read.
//! - Secret types have no `Display`, a redacting `Debug`, and are wiped on drop.
//! - The format is written down byte by byte in `docs/FORMAT.md`; `tests/vectors/` pins it.

#![forbid(unsafe_code)]

#[cfg(feature = "client")]
pub mod client;
pub mod container;
pub mod crypto;
#[cfg(feature = "server")]
pub mod mail;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod storage;
pub mod wire;
