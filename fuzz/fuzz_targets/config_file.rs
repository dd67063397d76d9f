//! The engine's configuration file as `vaka serve --config` reads it: UTF-8 text parsed as TOML
//! into the configuration's types and validated (`vaka::config::Config::parse`).
//!
//! Asserted:
//! - nothing panics, whatever the text;
//! - a refused file names at least one problem, each with a reason;
//! - a file that validates starts: every part the engine builds from it (router, store, centre
//!   API, retention, directory defaults) is built, and its `[[centres]]`, `[[tenants]]` and
//!   `[[devices]]` apply, in order, to a new store's directory as the engine's first start
//!   applies them, so nothing the check passed is refused at start.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vaka::config::Config;
use vaka_core::directory::{Directory, Records};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let cfg = match Config::parse(text) {
        Ok(cfg) => cfg,
        Err(problems) => {
            assert!(!problems.is_empty(), "refused without a reason");
            for p in &problems {
                assert!(!p.to_string().trim().is_empty(), "an empty problem");
            }
            return;
        }
    };
    let _ = (
        cfg.router_config(),
        cfg.group_config(),
        cfg.retention_config(),
    );
    let _ = (cfg.centre_api_config(), cfg.centre_tls(), cfg.sip_realm());
    let _ = cfg.centre_credentials();
    let mut dir = Directory::from_records(cfg.directory_defaults(), Records::default(), 0);
    for (i, change) in cfg.bootstrap_changes().into_iter().enumerate() {
        let shown = format!("{change:?}");
        if let Err(e) = dir.apply(change, i as u64 + 1) {
            panic!("validated, then refused at start: {e}: {shown}");
        }
    }
    let _ = cfg.directory();
});
