//! The one integration-test binary. Each module covers one capability; shared helpers live in
//! `support`.

mod agekit;
mod interop;
mod items;
mod keys;
mod statements;
mod support;
mod tidy;
mod vectors;
