//! The order aggregate of the ledger, as pure code: no I/O, no clock, no id generation.
//!
//! A [`Command`] carries who acts and when; [`decide`] applies every rule of DOMAIN.md to the
//! order's [`OrderState`] and either refuses with a [`Rejection`] or returns [`Event`]s;
//! [`evolve`] folds events back into state without any rule of its own. [`Money`] is a
//! `Decimal` in an ISO 4217 currency, and [`Policy`] holds the platform's windows and rates.
//! [`check_event`] tells whether a recorded history is legal without its commands.

mod check;
mod command;
mod decide;
mod event;
mod ids;
pub mod instant;
mod money;
mod naming;
mod policy;
mod rejection;
mod state;

pub use check::{check_event, IllegalEvent};
pub use command::{Command, CommandKind, ExtraKind, Resolution};
pub use decide::{decide, review_window_end, roles_allowed, states_allowed, ACTIVE_STATES};
pub use event::*;
pub use ids::{Actor, OrderId, Party, Role, UserId};
pub use money::{
    Currency, Money, MoneyError, NotPayable, AMOUNT_MAJOR_UNITS_MAX, AMOUNT_TEXT_CHARS_MAX,
};
pub use naming::{is_order_stream, order_of_stream, order_stream_name, ORDER_STREAM_PREFIX};
pub use policy::*;
pub use rejection::Rejection;
pub use state::{evolve, CancellationRequest, Extra, Order, OrderState, Review, Status};

pub use chrono;
pub use rust_decimal::Decimal;
