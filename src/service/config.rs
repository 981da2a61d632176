//! `ledger serve`'s configuration: the same `ledger.toml` and `LEDGER_*` variables as the
//! store's, with the service's own keys. Nested keys take `__` in variables
//! (`LEDGER_POLICY__COMMISSION_RATE=0.15`).

use super::auth::TokenKeys;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use ledger_domain::Policy;
use ledger_store::{CONFIG_FILE_DEFAULT, ENV_PREFIX};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;

/// Largest request body accepted; commands are small, so anything larger is a mistake.
pub const BODY_LIMIT_BYTES_DEFAULT: usize = 64 * 1024;
/// Below this, a command with a reason of any length could not be sent at all.
pub const BODY_LIMIT_BYTES_MIN: usize = 4 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceConfig {
    pub listen: SocketAddr,
    /// HS256 secret of the bearer tokens; required unless `--dev` makes one.
    pub jwt_secret: Option<String>,
    /// How often due deadlines are looked for.
    pub timer_interval_ms: u64,
    pub body_limit_bytes: usize,
    /// Orders whose state the command pipeline keeps in memory: more than are active at once.
    pub state_cache_orders: usize,
    pub policy: Policy,
    /// Where to serve the EventStoreDB client protocol (docs/eventstoredb.md); off if unset.
    pub grpc_listen: Option<SocketAddr>,
    /// Who may use the EventStoreDB protocol with basic credentials (`[[grpc_users]]`).
    pub grpc_users: Vec<ledger_store::node::NodeUser>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            jwt_secret: None,
            timer_interval_ms: 1_000,
            body_limit_bytes: BODY_LIMIT_BYTES_DEFAULT,
            state_cache_orders: ledger_commands::STATE_CACHE_ORDERS_DEFAULT,
            policy: Policy::default(),
            grpc_listen: None,
            grpc_users: Vec::new(),
        }
    }
}

impl ServiceConfig {
    /// The keys of the configured secret, for what mints tokens outside `serve` (`ledger
    /// token`, `bench http --url`): with no secret there is nothing to mint with.
    pub fn minting_keys(&self) -> anyhow::Result<TokenKeys> {
        let secret = self.jwt_secret.as_deref().ok_or_else(|| {
            anyhow::anyhow!("no token secret: set jwt_secret in ledger.toml or LEDGER_JWT_SECRET")
        })?;
        Ok(TokenKeys::new(secret)?)
    }

    pub fn load(file: Option<&Path>) -> anyhow::Result<ServiceConfig> {
        check_file_keys(file)?;
        let file = file.unwrap_or(Path::new(CONFIG_FILE_DEFAULT));
        let config: ServiceConfig = Figment::from(Serialized::defaults(ServiceConfig::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed(ENV_PREFIX).split("__"))
            .extract()
            .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        config
            .policy
            .validate()
            .map_err(|e| anyhow::anyhow!("configuration: policy: {e}"))?;
        if config.timer_interval_ms == 0 {
            anyhow::bail!("configuration: timer_interval_ms must be at least 1");
        }
        if config.state_cache_orders == 0 {
            anyhow::bail!("configuration: state_cache_orders must be at least 1");
        }
        if config.body_limit_bytes < BODY_LIMIT_BYTES_MIN {
            anyhow::bail!(
                "configuration: body_limit_bytes must be at least {BODY_LIMIT_BYTES_MIN} (got {}): every command with a reason would be refused as too large",
                config.body_limit_bytes
            );
        }
        Ok(config)
    }
}

/// Refuses a top-level key of the configuration file that neither the store nor the service
/// reads. A typo (`data-dir`, `timer_interval`) would otherwise pass in silence, and the
/// ledger would run on the default the operator meant to change: its log in `./data`.
/// Variables are not checked: other programs' `LEDGER_*` may share the environment.
pub fn check_file_keys(file: Option<&Path>) -> anyhow::Result<()> {
    let path = file.unwrap_or(Path::new(CONFIG_FILE_DEFAULT));
    let keys: figment::value::Dict = Figment::from(Toml::file(path))
        .extract()
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    // The keys as the derived `Deserialize`s name them: the list cannot drift from the code.
    use serde_aux::serde_introspection::serde_introspect;
    let known = [
        serde_introspect::<ledger_store::StoreConfig>(),
        serde_introspect::<ServiceConfig>(),
    ]
    .concat();
    let unknown: Vec<&str> = keys
        .keys()
        .map(String::as_str)
        .filter(|key| !known.contains(key))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let mut known = known;
    known.sort_unstable();
    anyhow::bail!(
        "configuration: {} has {} `{}` that nothing reads (a typo?); the keys are {}",
        path.display(),
        if unknown.len() == 1 { "a key" } else { "keys" },
        unknown.join("`, `"),
        known.join(", ")
    )
}
