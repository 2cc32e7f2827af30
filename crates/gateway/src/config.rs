//! The gateway from the facade's [`Config`]: [`gateway_from_config`], [`settings_from_config`]
//! and [`load_config`] (what the binary runs).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use towerguard::config::{Config, ConfigErrors, Env};

use crate::handle::PipelineOps;
use crate::server::Gateway;
use crate::settings::{Secret, Settings, Tenant};

/// The environment variable naming a configuration file (when `--config` is not given).
pub const CONFIG_ENV: &str = "TOWERGUARD_CONFIG";

/// Where a configuration came from (for the start-up log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A file.
    File(PathBuf),
    /// The well-known providers whose keys the environment holds.
    Environment,
    /// [`Config::embedded_default`]: simulated providers, no keys needed.
    EmbeddedDefault,
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigSource::File(p) => write!(f, "{}", p.display()),
            ConfigSource::Environment => f.write_str("the environment's provider keys"),
            ConfigSource::EmbeddedDefault => {
                f.write_str("the embedded default (simulated providers)")
            }
        }
    }
}

/// The configuration the binary runs: `path` if given; else the file `TOWERGUARD_CONFIG`
/// names; else the providers whose keys `env` holds; else [`Config::embedded_default`]. A
/// file is never picked up from the working directory by itself, so the same command runs
/// the same configuration wherever it is started. Every mistake is reported at once, each
/// with its field path.
pub fn load_config(
    path: Option<&Path>,
    env: impl Env,
) -> Result<(Config, ConfigSource), ConfigErrors> {
    let file = path.map(Path::to_path_buf).or_else(|| {
        env.var(CONFIG_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    if let Some(file) = file {
        let config = Config::load_with(&file, env)?;
        return Ok((config, ConfigSource::File(file)));
    }
    match Config::from_env(env) {
        Some(config) => Ok((config?, ConfigSource::Environment)),
        None => Ok((Config::embedded_default(), ConfigSource::EmbeddedDefault)),
    }
}

/// The server settings of `config`'s `[server]` section, its `[[tenants]]` and its admin
/// token (the shutdown deadline is the default 30 s: the file has no field for it).
pub fn settings_from_config(config: &Config) -> Settings {
    let s = &config.server;
    let bind = match s.bind.as_str() {
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        other => other.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    };
    Settings {
        bind,
        port: s.port,
        max_body_bytes: s.max_body_bytes,
        request_timeout: s.request_timeout,
        concurrency_limit: s.concurrency_limit,
        keys_required: s.keys_required,
        tenants: config
            .tenants
            .iter()
            .map(|t| Tenant {
                name: t.name.clone(),
                key_sha256: t.key_sha256.clone(),
            })
            .collect(),
        admin_token: config.admin_token.as_ref().map(|t| Secret::new(t.expose())),
        otlp_endpoint: s.otlp_endpoint.clone(),
        ..Settings::default()
    }
}

/// Why a gateway could not be built from a configuration.
#[derive(Debug)]
pub enum BuildError {
    /// The configuration's mistakes, each with its field path.
    Config(ConfigErrors),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Config(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BuildError {}

impl From<ConfigErrors> for BuildError {
    fn from(e: ConfigErrors) -> Self {
        BuildError::Config(e)
    }
}

/// The gateway of a configuration: its pipeline and handle (validated in full first), and
/// its server settings.
pub fn gateway_from_config(config: &Config) -> Result<Gateway, BuildError> {
    let (pipeline, handle) = config.pipeline()?;
    let ops = PipelineOps::new(handle);
    Ok(Gateway::new(
        pipeline,
        Arc::new(ops),
        settings_from_config(config),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn the_embedded_default_unless_a_file_or_keys_are_given() {
        let none = BTreeMap::<String, String>::new();
        let (_, source) = load_config(None, &none).unwrap();
        assert_eq!(source, ConfigSource::EmbeddedDefault, "wherever it starts");

        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../towerguard.toml");
        let named = BTreeMap::from([(CONFIG_ENV.to_owned(), example.to_owned())]);
        let (_, source) = load_config(None, &named).unwrap();
        assert_eq!(source, ConfigSource::File(PathBuf::from(example)));

        let (_, source) = load_config(Some(Path::new(example)), &none).unwrap();
        assert_eq!(source, ConfigSource::File(PathBuf::from(example)));
    }
}
