//! Bearer tokens: HS256 JWTs whose `sub` is the user id and whose `role` says in which
//! capacity they act. Parties are checked against the order itself, not the token.

use super::problem::ApiError;
use super::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ledger_domain::{Actor, Order, Party, Role, UserId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Validity of tokens `serve --dev` prints and `ledger token` mints by default.
pub const TOKEN_TTL_HOURS_DEFAULT: i64 = 24;

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

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    role: ApiRole,
    iat: i64,
    exp: i64,
}

/// The secret both sides of a token share.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token secret must not be empty")]
    EmptySecret,
    #[error("cannot sign the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

impl TokenKeys {
    pub fn new(secret: &str) -> Result<TokenKeys, TokenError> {
        if secret.is_empty() {
            return Err(TokenError::EmptySecret);
        }
        Ok(TokenKeys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
        })
    }

    pub fn mint(
        &self,
        role: ApiRole,
        sub: Uuid,
        issued_at: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<String, TokenError> {
        let claims = Claims {
            sub,
            role,
            iat: issued_at.timestamp(),
            exp: (issued_at + ttl).timestamp(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    pub(super) fn verify(&self, token: &str) -> Result<Principal, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)?.claims;
        Ok(Principal {
            user: UserId(claims.sub),
            role: claims.role,
        })
    }
}

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
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        state
            .keys
            .verify(token)
            .map_err(|e| ApiError::unauthorized(format!("the token was refused: {e}")))
    }
}
