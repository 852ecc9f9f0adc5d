//! Wire formats shared by every part of Attache: identifiers, the big-endian codec that every
//! binary record is written with, and hex.
//!
//! This module is pure: it imports nothing else of the crate and does no IO, no async and never
//! reads the clock. Parsing is strict ("parse, don't validate"): a reader that is left with bytes
//! it did not expect is an error, never silently ignored.

pub mod api;
pub mod audit;
mod codec;
mod hex;
mod time;

pub use codec::{DecodeError, Reader, Writer};
pub use hex::{from_hex, to_hex};
pub use time::{format_utc, utc_stamp};
