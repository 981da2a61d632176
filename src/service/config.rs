//! `ledger serve`'s configuration: the same `ledger.toml` and `LEDGER_*` variables as the
//! store's, with the service's own keys. Nested keys take `__` in variables
//! (`LEDGER_POLICY__COMMISSION_RATE=0.15`).

use super::auth::TokenKeys;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use ledger_domain::Policy;
use ledger_store::node::NodeTls;
use ledger_store::{CONFIG_FILE_DEFAULT, ENV_PREFIX};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
    /// Calls with no credentials may read and subscribe (never append): for clients that send
    /// credentials only over TLS, which the node does not speak, on a network you trust.
    pub grpc_anonymous_read: bool,
    /// The node's certificate chain and key (PEM): with them it speaks TLS only.
    pub grpc_tls_cert: Option<PathBuf>,
    pub grpc_tls_key: Option<PathBuf>,
    /// The HTTP API's certificate chain and key (PEM): with them it speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
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
            grpc_anonymous_read: false,
            grpc_tls_cert: None,
            grpc_tls_key: None,
            tls_cert: None,
            tls_key: None,
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

    /// The node's TLS, read now so that a file that cannot serve stops the start before
    /// anything listens.
    pub fn grpc_tls(&self) -> anyhow::Result<Option<NodeTls>> {
        let names = ("grpc_tls_cert", "grpc_tls_key");
        let Some((certificate, key)) = pem_pair(&self.grpc_tls_cert, &self.grpc_tls_key, names)?
        else {
            return Ok(None);
        };
        if self.grpc_listen.is_none() {
            anyhow::bail!(
                "configuration: grpc_tls_cert is set but the EventStoreDB protocol is not served \
                 (set grpc_listen, or --grpc-listen)"
            );
        }
        let tls = NodeTls::from_pem_files(certificate, key)
            .map_err(|e| anyhow::anyhow!("configuration: grpc_tls_cert/grpc_tls_key: {e}"))?;
        Ok(Some(tls))
    }

    /// The HTTP API's TLS, read now for the same reason as the node's.
    pub fn https(&self) -> anyhow::Result<Option<NodeTls>> {
        let names = ("tls_cert", "tls_key");
        let Some((certificate, key)) = pem_pair(&self.tls_cert, &self.tls_key, names)? else {
            return Ok(None);
        };
        let tls = NodeTls::https_from_pem_files(certificate, key)
            .map_err(|e| anyhow::anyhow!("configuration: tls_cert/tls_key: {e}"))?;
        Ok(Some(tls))
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
/// Variables are only warned of (`warn_of_unknown_variables`): other programs' `LEDGER_*` may
/// share the environment.
pub fn check_file_keys(file: Option<&Path>) -> anyhow::Result<()> {
    warn_of_unknown_variables();
    let path = file.unwrap_or(Path::new(CONFIG_FILE_DEFAULT));
    let keys: figment::value::Dict = Figment::from(Toml::file(path))
        .extract()
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    let known = top_level_keys();
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

/// The keys as the derived `Deserialize`s name them: the list cannot drift from the code.
fn top_level_keys() -> Vec<&'static str> {
    use serde_aux::serde_introspection::serde_introspect;
    [
        serde_introspect::<ledger_store::StoreConfig>(),
        serde_introspect::<ServiceConfig>(),
    ]
    .concat()
}

/// `LEDGER_*` variables that the tests read, not the configuration.
const TEST_VARIABLES: [&str; 2] = ["LEDGER_CRASH_CYCLES", "LEDGER_ESDB_URL"];

/// The `LEDGER_*` variables among `names` that name no setting: `LEDGER_DATA_DIRR` would
/// leave the data directory at its default without a word. A warning, not a refusal, since
/// an environment carries variables for other programs too.
pub fn unknown_variables<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    use serde_aux::serde_introspection::serde_introspect;
    let (top, policy) = (top_level_keys(), serde_introspect::<Policy>());
    names
        .into_iter()
        .filter(|name| {
            let prefixed = name.len() > ENV_PREFIX.len()
                && name.is_char_boundary(ENV_PREFIX.len())
                && name[..ENV_PREFIX.len()].eq_ignore_ascii_case(ENV_PREFIX);
            if !prefixed || TEST_VARIABLES.contains(name) {
                return false;
            }
            // As `Env::prefixed(..).split("__")` reads them: lowercased, `__` nesting.
            let key = name[ENV_PREFIX.len()..].to_ascii_lowercase();
            match key.split_once("__") {
                Some(("policy", field)) => !policy.contains(&field),
                Some(_) => true,
                None => !top.contains(&key.as_str()),
            }
        })
        .collect()
}

fn warn_of_unknown_variables() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        let names: Vec<String> = std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .collect();
        let unknown = unknown_variables(names.iter().map(String::as_str));
        if unknown.is_empty() {
            return;
        }
        let mut settings: Vec<String> = top_level_keys()
            .iter()
            .filter(|key| **key != "policy")
            .map(|key| format!("{ENV_PREFIX}{}", key.to_ascii_uppercase()))
            .collect();
        settings.sort_unstable();
        let policy: Vec<String> = serde_aux::serde_introspection::serde_introspect::<Policy>()
            .iter()
            .map(|field| field.to_ascii_uppercase())
            .collect();
        let settings = format!(
            "{}, and {ENV_PREFIX}POLICY__ with one of {}",
            settings.join(", "),
            policy.join(", ")
        );
        // The service logs it as it logs the rest (JSON with `--log-format json`); the tools,
        // which log nothing, write it to stderr.
        if tracing::dispatcher::has_been_set() {
            tracing::warn!(
                variables = %unknown.join(", "),
                %settings,
                "LEDGER_* variables that name no setting are ignored (a typo?)"
            );
        } else {
            eprintln!(
                "warning: {} {} no setting and {} ignored (a typo?); the settings are {settings}",
                unknown.join(", "),
                if unknown.len() == 1 { "names" } else { "name" },
                if unknown.len() == 1 { "is" } else { "are" },
            );
        }
    });
}

/// A certificate and its key, both set or neither: one alone is a mistake, named.
fn pem_pair<'a>(
    certificate: &'a Option<PathBuf>,
    key: &'a Option<PathBuf>,
    (certificate_name, key_name): (&str, &str),
) -> anyhow::Result<Option<(&'a Path, &'a Path)>> {
    match (certificate, key) {
        (None, None) => Ok(None),
        (Some(certificate), Some(key)) => Ok(Some((certificate, key))),
        (Some(_), None) | (None, Some(_)) => anyhow::bail!(
            "configuration: {certificate_name} and {key_name} go together; only one is set"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::unknown_variables;

    #[test]
    fn a_ledger_variable_that_names_no_setting_is_told_apart() {
        let names = [
            "LEDGER_DATA_DIR",
            "ledger_jwt_secret",
            "LEDGER_POLICY__COMMISSION_RATE",
            "LEDGER_CRASH_CYCLES",
            "PATH",
            "LEDGER_",
            "LEDGER_DATA_DIRR",
            "LEDGER_POLICY__COMISSION_RATE",
            "LEDGER_POLICY",
            "LEDGER_STORE__PATH",
            "ledger_listn",
        ];
        assert_eq!(
            unknown_variables(names),
            [
                "LEDGER_DATA_DIRR",
                "LEDGER_POLICY__COMISSION_RATE",
                "LEDGER_STORE__PATH",
                "ledger_listn"
            ]
        );
    }
}
