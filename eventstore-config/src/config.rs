//! Where the log lives: `ledger.toml`, overridden by `LEDGER_*` environment variables.
//!
//! ```toml
//! store = "embedded"        # or "eventstoredb"
//! data_dir = "./data"       # embedded: the SQLite files live here
//! eventstoredb_url = "esdb://localhost:2113?tls=false"
//! eventstoredb_namespace = ""          # put before every stream name on the server
//! eventstoredb_stream_prefix = "order-" # the streams that make up the ledger's `$all`
//! ```

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const CONFIG_FILE_DEFAULT: &str = "ledger.toml";
pub const ENV_PREFIX: &str = "LEDGER_";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Embedded,
    EventStoreDb,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreConfig {
    pub store: StoreKind,
    pub data_dir: PathBuf,
    /// A connection string; may hold credentials, so it is never printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eventstoredb_url: Option<String>,
    #[serde(default)]
    pub eventstoredb_namespace: String,
    #[serde(default = "default_stream_prefix")]
    pub eventstoredb_stream_prefix: String,
}

fn default_stream_prefix() -> String {
    crate::EventStoreDbOptions::default().stream_prefix
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            store: StoreKind::Embedded,
            data_dir: PathBuf::from("./data"),
            eventstoredb_url: None,
            eventstoredb_namespace: String::new(),
            eventstoredb_stream_prefix: default_stream_prefix(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Invalid(String),
    #[error("store = \"eventstoredb\" needs eventstoredb_url (or LEDGER_EVENTSTOREDB_URL)")]
    MissingEventStoreDbUrl,
}

impl StoreConfig {
    /// Defaults, then the file if it exists, then `LEDGER_*` variables.
    pub fn load(file: Option<&Path>) -> Result<StoreConfig, ConfigError> {
        let config: StoreConfig = Self::figment(file)
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// The layered sources, for a caller that extracts a larger configuration from them.
    pub fn figment(file: Option<&Path>) -> Figment {
        let file = file.unwrap_or(Path::new(CONFIG_FILE_DEFAULT));
        Figment::from(Serialized::defaults(StoreConfig::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed(ENV_PREFIX))
    }

    /// Opens the configured store: the embedded one in `data_dir` (created if need be), or a
    /// connection to EventStoreDB that has proved it answers.
    pub async fn open(&self) -> Result<std::sync::Arc<dyn crate::EventStore>, crate::StoreError> {
        match self.store {
            StoreKind::Embedded => Ok(std::sync::Arc::new(crate::SqliteStore::open(
                &self.data_dir,
            )?)),
            StoreKind::EventStoreDb => {
                let url = self.eventstoredb_url.as_deref().ok_or_else(|| {
                    crate::StoreError::Io(ConfigError::MissingEventStoreDbUrl.to_string())
                })?;
                let options = crate::EventStoreDbOptions {
                    namespace: self.eventstoredb_namespace.clone(),
                    stream_prefix: self.eventstoredb_stream_prefix.clone(),
                };
                Ok(std::sync::Arc::new(
                    crate::EventStoreDbStore::connect(url, options).await?,
                ))
            }
        }
    }

    /// Opens the configured store to append to it: an embedded log that another process
    /// writes is refused (see `SqliteStore::to_write`).
    pub async fn open_to_write(
        &self,
    ) -> Result<std::sync::Arc<dyn crate::EventStore>, crate::StoreError> {
        match self.store {
            StoreKind::Embedded => Ok(std::sync::Arc::new(
                crate::SqliteStore::open(&self.data_dir)?.to_write()?,
            )),
            StoreKind::EventStoreDb => self.open().await,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.store == StoreKind::EventStoreDb && self.eventstoredb_url.is_none() {
            return Err(ConfigError::MissingEventStoreDbUrl);
        }
        Ok(())
    }
}
