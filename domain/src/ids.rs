//! Who and what: identifiers arrive from outside (the domain never makes one) and actors say
//! who did a thing, so that every event can record it.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// An order, named by the caller so that a retried placement names the same order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(pub Uuid);

/// A buyer, seller, mediator or finance user of the marketplace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub Uuid);

/// Ids in the order of their bytes, as `Uuid`'s own, compared as one big-endian integer:
/// `Uuid` compares its 16 bytes with a `memcmp` call, and the views sort and search
/// hundreds of thousands of ids (the lists' indexes, rows in key order).
macro_rules! ordered_as_integers {
    ($($id:ident),*) => {$(
        impl Ord for $id {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.0.as_u128().cmp(&other.0.as_u128())
            }
        }

        impl PartialOrd for $id {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }
    )*};
}

ordered_as_integers!(OrderId, UserId);

impl UserId {
    /// The service's own timers act under this id, so `by` is never absent on an event.
    pub const SYSTEM: UserId = UserId(Uuid::nil());
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Buyer,
    Seller,
    Mediator,
    Finance,
    System,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Buyer,
        Role::Seller,
        Role::Mediator,
        Role::Finance,
        Role::System,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Buyer => "buyer",
            Role::Seller => "seller",
            Role::Mediator => "mediator",
            Role::Finance => "finance",
            Role::System => "system",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two sides of an order; mutual cancellation needs to know which one asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    Buyer,
    Seller,
}

impl Party {
    pub fn other(self) -> Party {
        match self {
            Party::Buyer => Party::Seller,
            Party::Seller => Party::Buyer,
        }
    }
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Party::Buyer => "buyer",
            Party::Seller => "seller",
        })
    }
}

/// Who acts: a role and the user holding it. Authentication happens at the edge; the domain
/// only checks that this role may do this to this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    pub role: Role,
    pub user_id: UserId,
}

impl Actor {
    pub fn new(role: Role, user_id: UserId) -> Actor {
        Actor { role, user_id }
    }

    pub fn system() -> Actor {
        Actor::new(Role::System, UserId::SYSTEM)
    }

    /// The party this actor is, if its role is a party role. Whether it is *this order's*
    /// party is the order's question.
    pub fn party_role(&self) -> Option<Party> {
        match self.role {
            Role::Buyer => Some(Party::Buyer),
            Role::Seller => Some(Party::Seller),
            _ => None,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.role, self.user_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Ids sort as their bytes do, as `Uuid`'s own order has them: the lists, cursors and
        /// stored rows are in that order. Pairs often share a prefix, so that every byte
        /// gets to decide.
        #[test]
        fn ids_order_as_their_bytes_do(
            left in any::<[u8; 16]>(),
            right in any::<[u8; 16]>(),
            shared in 0usize..=16,
        ) {
            let mut right = right;
            right[..shared].copy_from_slice(&left[..shared]);
            let bytes = left.cmp(&right);
            let (left, right) = (Uuid::from_bytes(left), Uuid::from_bytes(right));
            prop_assert_eq!(OrderId(left).cmp(&OrderId(right)), bytes);
            prop_assert_eq!(UserId(left).partial_cmp(&UserId(right)), Some(bytes));
            prop_assert_eq!(left.cmp(&right), bytes);
        }
    }
}
