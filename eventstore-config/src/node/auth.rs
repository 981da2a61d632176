//! Who may use the node: the `authorization` header of each call, as the official clients send
//! it (`Basic` credentials), or a bearer token that the embedding service knows how to check.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// What a call asks to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read streams and `$all`, subscribe.
    Read,
    /// Append events (`Append`, `BatchAppend`).
    Append,
}

/// The credentials a call carried.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Bearer(String),
    Basic { username: String, password: String },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Bearer(_) => f.write_str("Bearer(..)"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ..)"),
        }
    }
}

/// Why a call was refused: `Unauthenticated` is who you are, `Forbidden` is what you asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
}

/// Decides whether credentials may have an access. The embedding service implements it.
pub trait NodeAuth: Send + Sync + 'static {
    fn authorize(&self, credentials: Option<&Credentials>, access: Access) -> Result<(), Denied>;
}

/// Reads the `authorization` header: `Basic <base64 user:password>` or `Bearer <token>`.
/// A header that is present but unreadable is refused rather than treated as absent.
pub fn parse_authorization(header: Option<&str>) -> Result<Option<Credentials>, Denied> {
    let Some(header) = header else {
        return Ok(None);
    };
    let bad = || Denied::Unauthenticated("the authorization header cannot be read".to_owned());
    let (scheme, value) = header.split_once(' ').ok_or_else(bad)?;
    match scheme {
        s if s.eq_ignore_ascii_case("bearer") => Ok(Some(Credentials::Bearer(value.to_owned()))),
        s if s.eq_ignore_ascii_case("basic") => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .map_err(|_| bad())?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
            let (username, password) = decoded.split_once(':').ok_or_else(bad)?;
            Ok(Some(Credentials::Basic {
                username: username.to_owned(),
                password: password.to_owned(),
            }))
        }
        _ => Err(bad()),
    }
}

/// A user of the node, from configuration (`[[grpc_users]]`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeUser {
    pub username: String,
    /// Never printed.
    pub password: String,
    /// May append. Appending bypasses the domain's rules, so only operators' tools (`ledger
    /// copy`, the store's tests) should have it.
    #[serde(default)]
    pub append: bool,
}

impl fmt::Debug for NodeUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeUser")
            .field("username", &self.username)
            .field("append", &self.append)
            .finish_non_exhaustive()
    }
}

/// Basic credentials checked against configured users; every user may read.
#[derive(Clone, Debug, Default)]
pub struct BasicUsers {
    users: Vec<NodeUser>,
}

impl BasicUsers {
    pub fn new(users: Vec<NodeUser>) -> BasicUsers {
        BasicUsers { users }
    }

    /// The user these credentials prove, if any. Passwords are compared as digests, so the
    /// comparison takes the same time whatever prefix matches.
    pub fn check(&self, username: &str, password: &str) -> Option<&NodeUser> {
        let offered = Sha256::digest(password.as_bytes());
        self.users
            .iter()
            .find(|u| u.username == username && Sha256::digest(u.password.as_bytes()) == offered)
    }

    /// The decision for `Basic` credentials.
    pub fn authorize_basic(
        &self,
        username: &str,
        password: &str,
        access: Access,
    ) -> Result<(), Denied> {
        let user = self
            .check(username, password)
            .ok_or_else(|| Denied::Unauthenticated("unknown user or wrong password".to_owned()))?;
        match access {
            Access::Read => Ok(()),
            Access::Append if user.append => Ok(()),
            Access::Append => Err(Denied::Forbidden(format!(
                "{} may read but not append",
                user.username
            ))),
        }
    }
}

impl NodeAuth for BasicUsers {
    fn authorize(&self, credentials: Option<&Credentials>, access: Access) -> Result<(), Denied> {
        match credentials {
            Some(Credentials::Basic { username, password }) => {
                self.authorize_basic(username, password, access)
            }
            Some(Credentials::Bearer(_)) => Err(Denied::Unauthenticated(
                "bearer tokens are not accepted by this node".to_owned(),
            )),
            None => Err(Denied::Unauthenticated("credentials required".to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> BasicUsers {
        BasicUsers::new(vec![
            NodeUser {
                username: "ops".into(),
                password: "secret".into(),
                append: true,
            },
            NodeUser {
                username: "reader".into(),
                password: "pw".into(),
                append: false,
            },
        ])
    }

    fn basic(user: &str, password: &str) -> Option<Credentials> {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        parse_authorization(Some(&format!("Basic {encoded}"))).expect("readable")
    }

    #[test]
    fn basic_credentials_are_checked_against_the_users_and_their_rights() {
        let users = users();
        assert_eq!(
            users.authorize(basic("ops", "secret").as_ref(), Access::Append),
            Ok(())
        );
        assert_eq!(
            users.authorize(basic("reader", "pw").as_ref(), Access::Read),
            Ok(())
        );
        assert!(matches!(
            users.authorize(basic("reader", "pw").as_ref(), Access::Append),
            Err(Denied::Forbidden(_))
        ));
        assert!(matches!(
            users.authorize(basic("ops", "wrong").as_ref(), Access::Read),
            Err(Denied::Unauthenticated(_))
        ));
        assert!(matches!(
            users.authorize(None, Access::Read),
            Err(Denied::Unauthenticated(_))
        ));
    }

    #[test]
    fn unreadable_headers_are_refused_not_ignored() {
        for header in ["Basic !!!", "Basic", "Digest abc", "Basic bm9jb2xvbg=="] {
            assert!(parse_authorization(Some(header)).is_err(), "{header}");
        }
        assert_eq!(
            parse_authorization(Some("Bearer abc")),
            Ok(Some(Credentials::Bearer("abc".into())))
        );
    }

    #[test]
    fn passwords_are_never_printed() {
        let printed = format!("{:?} {:?}", users(), basic("ops", "secret"));
        assert!(!printed.contains("secret"), "{printed}");
    }
}
