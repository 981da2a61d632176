//! Read models derived from the event log. The log is the ground state; every view here can
//! be thrown away and rebuilt from the first event, and comes out the same.
//!
//! [`Fact`] is a decoded recorded event. [`Views`] folds facts into the seven read models of
//! DOMAIN.md: [`EscrowView`], [`WalletView`], [`CompletionView`], [`ReviewView`],
//! [`OrderView`], [`JournalView`] and [`TimerView`], each with its query functions.
//! [`Projector`] keeps them current from any `EventStore` and stores them with their
//! checkpoint in a read-model database of its own.

mod engine;
mod fact;
pub mod rows;
pub mod views;

pub use engine::{
    PendingSave, Progress, ProjectionError, Projector, Saver, StoredViews, ViewsCheck,
    READ_MODEL_FILE_NAME, READ_MODEL_LOCK_FILE_NAME, SAVE_EVERY_EVENTS, SAVE_INTERVAL,
};
pub use fact::{Fact, FactError};
pub use views::completion::{CompletionRate, CompletionView, RateFigures};
pub use views::escrow::{
    escrow_as_at, AgedHolding, EscrowHolding, EscrowView, AGING_BUCKET_UPPER_DAYS,
};
pub use views::journal::{
    books_at, Account, BooksAt, JournalView, Memo, Period, Posting, POSTINGS_PER_SLICE,
};
pub use views::orders::{OrderFilter, OrderPage, OrderSummary, OrderView, ORDER_PAGE_SIZE_MAX};
pub use views::reviews::{LeftReview, ReviewView, ReviewWindow};
pub use views::timers::{DueTimer, TimerKind, TimerView};
pub use views::wallets::{CreditReason, PeriodStatement, StatementLine, Wallet, WalletView};
pub use views::{ViewName, Views};
