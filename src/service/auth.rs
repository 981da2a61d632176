//! Bearer tokens: HS256 JWTs whose `sub` is the user id and whose `role` says in which
//! capacity they act. Parties are checked against the order itself, not the token.

use super::problem::ApiError;
use super::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ledger_domain::{Actor, Order, Party, Role, UserId};
use lru::LruCache;
use serde::{Deserialize, Serialize};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Validity of tokens `serve --dev` prints and `ledger token` mints by default.
pub const TOKEN_TTL_HOURS_DEFAULT: i64 = 24;
/// The longest validity `ledger token` mints: ten years. A bearer token cannot be revoked
/// short of changing the secret, so there is no "forever".
pub const TOKEN_TTL_HOURS_MAX: i64 = 10 * 366 * 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ApiRole {
    Buyer,
    Seller,
    Mediator,
    Finance,
    /// Another service: reads the event streams, commands nothing.
    Service,
}

impl ApiRole {
    pub const ALL: [ApiRole; 5] = [
        ApiRole::Buyer,
        ApiRole::Seller,
        ApiRole::Mediator,
        ApiRole::Finance,
        ApiRole::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ApiRole::Buyer => "buyer",
            ApiRole::Seller => "seller",
            ApiRole::Mediator => "mediator",
            ApiRole::Finance => "finance",
            ApiRole::Service => "service",
        }
    }
}

/// What a token says. `iat` is optional (RFC 7519): tokens from another issuer often omit it,
/// and nothing here depends on when a token was issued, only on `exp` and `nbf`.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    role: ApiRole,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    exp: i64,
}

/// Verified tokens remembered, so that a client's every request does not pay again for the
/// signature and the claims' JSON (3% of the service's CPU under load).
const VERIFIED_TOKENS_MAX: usize = 10_000;

/// The secret both sides of a token share.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Whole token → who it names and when it expires (seconds since the epoch). Only tokens
    /// whose signature checked out get in, and the expiry is checked again at every use.
    verified: Arc<Mutex<LruCache<String, (Principal, i64)>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token secret must not be empty")]
    EmptySecret,
    #[error("cannot sign the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
    #[error(
        "a token valid for {hours} hours from {issued_at} would expire past the calendar's end"
    )]
    ExpiryOutOfRange {
        hours: i64,
        issued_at: DateTime<Utc>,
    },
    #[error("the nil UUID is the id the service's own timers act under, not a user's")]
    SystemSub,
}

impl TokenKeys {
    pub fn new(secret: &str) -> Result<TokenKeys, TokenError> {
        if secret.is_empty() {
            return Err(TokenError::EmptySecret);
        }
        Ok(TokenKeys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            verified: Arc::new(Mutex::new(LruCache::new(
                NonZeroUsize::new(VERIFIED_TOKENS_MAX).unwrap_or(NonZeroUsize::MIN),
            ))),
        })
    }

    pub fn mint(
        &self,
        role: ApiRole,
        sub: Uuid,
        issued_at: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<String, TokenError> {
        if sub.is_nil() {
            return Err(TokenError::SystemSub);
        }
        let expires_at = issued_at
            .checked_add_signed(ttl)
            .ok_or(TokenError::ExpiryOutOfRange {
                hours: ttl.num_hours(),
                issued_at,
            })?;
        let claims = Claims {
            sub,
            role,
            iat: Some(issued_at.timestamp()),
            exp: expires_at.timestamp(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    pub(super) fn verify(&self, token: &str) -> Result<Principal, TokenRefused> {
        // As jsonwebtoken with no leeway: a token is refused once `exp` is in the past.
        let now = jsonwebtoken::get_current_timestamp();
        let still_valid = |exp: i64| u64::try_from(exp).is_ok_and(|exp| exp >= now);
        if let Ok(mut verified) = self.verified.lock() {
            match verified.get(token) {
                Some(&(principal, exp)) if still_valid(exp) => return Ok(principal),
                Some(_) => {
                    verified.pop(token);
                }
                None => {}
            }
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(TokenRefused)?
            .claims;
        let principal = Principal {
            user: UserId(claims.sub),
            role: claims.role,
        };
        if let Ok(mut verified) = self.verified.lock() {
            verified.put(token.to_owned(), (principal, claims.exp));
        }
        Ok(principal)
    }
}

/// Why a token was refused, in words a client's developer can act on (jsonwebtoken's own
/// names, such as `ImmatureSignature`, say little to them).
#[derive(Debug)]
pub struct TokenRefused(jsonwebtoken::errors::Error);

impl std::fmt::Display for TokenRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use jsonwebtoken::errors::ErrorKind;
        match self.0.kind() {
            ErrorKind::ExpiredSignature => f.write_str("it has expired (`exp` is past)"),
            ErrorKind::ImmatureSignature => f.write_str("it is not valid yet (`nbf` is ahead)"),
            ErrorKind::InvalidSignature => {
                f.write_str("its signature does not match the configured secret")
            }
            ErrorKind::InvalidAlgorithm => f.write_str("it is not signed with HS256"),
            ErrorKind::InvalidAudience => {
                f.write_str("it names an audience (`aud`), and this service is not one")
            }
            ErrorKind::MissingRequiredClaim(claim) => write!(f, "it has no `{claim}` claim"),
            ErrorKind::Json(e) => write!(f, "its header or claims do not fit: {e}"),
            ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
                f.write_str("it is not a JWT (three base64url parts joined by dots)")
            }
            _ => write!(f, "{}", self.0),
        }
    }
}

impl std::error::Error for TokenRefused {}

/// Who is calling, from a verified token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user: UserId,
    pub role: ApiRole,
}

impl Principal {
    /// The actor of the domain's commands; the service role commands nothing.
    pub fn actor(&self) -> Option<Actor> {
        let role = match self.role {
            ApiRole::Buyer => Role::Buyer,
            ApiRole::Seller => Role::Seller,
            ApiRole::Mediator => Role::Mediator,
            ApiRole::Finance => Role::Finance,
            ApiRole::Service => return None,
        };
        Some(Actor::new(role, self.user))
    }

    /// The party this caller is to `order`, acting in the role of their token.
    pub fn party_to(&self, order: &Order) -> Option<Party> {
        match self.role {
            ApiRole::Buyer if order.buyer == self.user => Some(Party::Buyer),
            ApiRole::Seller if order.seller == self.user => Some(Party::Seller),
            _ => None,
        }
    }

    /// Parties see their own orders; the listed staff roles see every order.
    pub fn require_party_or(&self, order: &Order, staff: &[ApiRole]) -> Result<(), ApiError> {
        if staff.contains(&self.role) || self.party_to(order).is_some() {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "a {} who is not a party to order {} may not see it",
            self.role.as_str(),
            order.id
        )))
    }

    pub fn require_role(&self, allowed: &[ApiRole]) -> Result<(), ApiError> {
        if allowed.contains(&self.role) {
            return Ok(());
        }
        let names: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
        Err(ApiError::forbidden(format!(
            "only {} may do this, not a {}",
            names.join(" or "),
            self.role.as_str()
        )))
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::unauthorized("an `Authorization: Bearer <token>` header is required")
            })?;
        // The scheme is case-insensitive (RFC 9110, 11.1): some clients send `bearer`.
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.trim_start().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        state
            .keys
            .verify(token)
            .map_err(|e| ApiError::unauthorized(format!("the token was refused: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_token_is_still_refused_once_it_expires() {
        let keys = TokenKeys::new("secret").expect("keys");
        let user = Uuid::from_u128(1);
        let second = chrono::Duration::seconds(1);
        let token = keys
            .mint(ApiRole::Buyer, user, Utc::now(), second)
            .expect("mint");
        assert_eq!(
            keys.verify(&token).expect("valid now").user,
            UserId(user),
            "first use: verified and remembered"
        );
        assert!(keys.verify(&token).is_ok(), "second use: remembered");
        std::thread::sleep(std::time::Duration::from_millis(2_100));
        assert!(keys.verify(&token).is_err(), "expired while remembered");
        assert!(keys.verify(&token).is_err(), "and forgotten, still expired");
    }

    #[test]
    fn a_token_expiring_past_the_calendar_is_an_error_not_a_panic() {
        let keys = TokenKeys::new("secret").expect("keys");
        let late = DateTime::<Utc>::MAX_UTC - chrono::Duration::hours(1);
        let minted = keys.mint(
            ApiRole::Service,
            Uuid::from_u128(3),
            late,
            chrono::Duration::hours(2),
        );
        assert!(
            matches!(minted, Err(TokenError::ExpiryOutOfRange { hours: 2, .. })),
            "{minted:?}"
        );
    }

    #[test]
    fn no_token_is_minted_for_the_timers_id() {
        let keys = TokenKeys::new("secret").expect("keys");
        let hour = chrono::Duration::hours(1);
        let minted = keys.mint(ApiRole::Finance, Uuid::nil(), Utc::now(), hour);
        assert!(matches!(minted, Err(TokenError::SystemSub)), "{minted:?}");
    }

    #[test]
    fn a_token_signed_with_another_secret_is_never_remembered() {
        let (keys, forger) = (TokenKeys::new("secret"), TokenKeys::new("guess"));
        let (keys, forger) = (keys.expect("keys"), forger.expect("keys"));
        let hour = chrono::Duration::hours(1);
        let forged = forger
            .mint(ApiRole::Mediator, Uuid::from_u128(9), Utc::now(), hour)
            .expect("mint");
        assert!(keys.verify(&forged).is_err());
        assert!(keys.verify(&forged).is_err(), "refused again, not cached");
        let genuine = keys
            .mint(ApiRole::Mediator, Uuid::from_u128(9), Utc::now(), hour)
            .expect("mint");
        assert!(keys.verify(&genuine).is_ok());
    }
}
