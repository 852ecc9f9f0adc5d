#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| attache_fuzz::json::<attache::wire::api::CloseMatter>(data));
