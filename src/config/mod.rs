//! The configuration file: TOML, deserialised with serde, then validated. Every error names the key
//! at fault and the reason, e.g. `devices[1].tenant: unknown tenant "x"`.
//! By job: `types` (the file's sections), `validate` (every problem, naming its key), `build`
//! (the settings the engine is built from).
use std::fmt;
use std::path::Path;

mod build;
mod types;
mod validate;

pub use types::*;

/// A configuration error: the key at fault and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

fn err(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        reason: reason.into(),
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![err("", format!("cannot read {}: {e}", path.display()))])?;
        Self::parse(&text)
    }

    /// Parses and validates; returns every problem found, not just the first.
    pub fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
        let de = toml::Deserializer::parse(text).map_err(|e| vec![syntax_error(text, &e)])?;
        let mut cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let reason = toml_reason(e.inner());
            vec![err(if key == "." { String::new() } else { key }, reason)]
        })?;
        if let Some(q) = &mut cfg.quic {
            q.listen = cfg.listen.quic;
            q.telemetry_listen = cfg.listen.quic_telemetry;
        }
        let problems = cfg.validate();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(problems)
        }
    }
}

/// The reason alone: toml's Display adds a source snippet over several lines.
fn toml_reason(e: &toml::de::Error) -> String {
    e.message().trim().to_string()
}

/// Syntax errors have no key yet: name the line instead.
fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    match line {
        Some(l) => err(format!("line {l}"), toml_reason(e)),
        None => err("", toml_reason(e)),
    }
}
