//! The one integration-test binary. Each module covers one capability; shared helpers live in
//! `support`.

#![allow(
    clippy::unwrap_used,
    reason = "in tests a panic is a failure that names its line; helpers unwrap like tests do"
)]

mod agekit;
mod agent;
mod api;
mod backup;
mod container;
mod crash;
mod e2e;
mod fuzz_regressions;
mod garbage;
mod interop;
mod items;
mod keys;
mod legal;
mod legal_api;
mod limits;
mod matrix;
mod notices;
mod pipelined;
mod quotas;
mod sealed_send;
mod statements;
mod support;
mod tidy;
mod vectors;
