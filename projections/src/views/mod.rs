//! Every view is a pure fold over facts: `apply` reads one fact and changes nothing else.

pub mod completion;
pub mod escrow;
pub mod journal;
pub mod orders;
pub mod reviews;
pub mod timers;
pub mod wallets;

use crate::rows::{PendingRows, RowChange, RowEncodeError, RowError, RowSink};
use crate::Fact;
use serde::{Deserialize, Serialize};

/// The views by name, for `rebuild --view` and for the store of read models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewName {
    Escrow,
    Wallets,
    Completion,
    Reviews,
    Orders,
    Journal,
    Timers,
}

impl ViewName {
    pub const ALL: [ViewName; 7] = [
        ViewName::Escrow,
        ViewName::Wallets,
        ViewName::Completion,
        ViewName::Reviews,
        ViewName::Orders,
        ViewName::Journal,
        ViewName::Timers,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ViewName::Escrow => "escrow",
            ViewName::Wallets => "wallets",
            ViewName::Completion => "completion",
            ViewName::Reviews => "reviews",
            ViewName::Orders => "orders",
            ViewName::Journal => "journal",
            ViewName::Timers => "timers",
        }
    }
}

impl std::str::FromStr for ViewName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ViewName::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a view (escrow, wallets, completion, reviews, orders, journal, timers)"))
    }
}

/// Takes one view's changed rows into a sink; see `Views::take_changes_jobs`.
pub type TakeChanges<'a> =
    Box<dyn FnOnce(&mut dyn RowSink) -> Result<(), RowEncodeError> + Send + 'a>;

/// All the read models, folded together from one pass over the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Views {
    pub escrow: escrow::EscrowView,
    pub wallets: wallets::WalletView,
    pub completion: completion::CompletionView,
    pub reviews: reviews::ReviewView,
    pub orders: orders::OrderView,
    pub journal: journal::JournalView,
    pub timers: timers::TimerView,
}

impl Views {
    /// Views that will be stored whole, if ever (a rebuild, a simulation): no change is
    /// tracked per key while they fold.
    pub fn unstored() -> Views {
        let mut views = Views::default();
        for view in ViewName::ALL {
            views.mark_all_changed(view);
        }
        views
    }

    /// For a fold of the whole log: indexes that every event would update (the timers'
    /// schedule, escrow by age, the lists of orders, review windows by end) are left stale until
    /// `build_deferred_indexes` builds them once at the end, from sorted runs where it
    /// helps. Nothing may be asked of the views in between.
    pub fn defer_indexes(&mut self) {
        self.timers.defer_schedule();
        self.escrow.defer_index();
        self.orders.defer_lists();
        self.reviews.defer_index();
    }

    pub fn build_deferred_indexes(&mut self) {
        self.timers.reindex();
        self.escrow.reindex();
        self.orders.reindex();
        self.reviews.reindex();
    }

    pub fn apply(&mut self, fact: &Fact) {
        self.escrow.apply(fact);
        self.wallets.apply(fact);
        self.completion.apply(fact);
        self.reviews.apply(fact);
        self.orders.apply(fact);
        self.journal.apply(fact);
        self.timers.apply(fact);
    }

    /// One view's state as JSON: what the read-model store keeps, and what "rebuilds the
    /// same bytes" compares.
    pub fn to_json(&self, view: ViewName) -> Result<Vec<u8>, serde_json::Error> {
        let mut json = Vec::new();
        self.write_json(view, &mut json)?;
        Ok(json)
    }

    /// `to_json`'s bytes, written to `out` as they are made.
    pub fn write_json(
        &self,
        view: ViewName,
        out: &mut impl std::io::Write,
    ) -> Result<(), serde_json::Error> {
        match view {
            ViewName::Escrow => serde_json::to_writer(out, &self.escrow),
            ViewName::Wallets => serde_json::to_writer(out, &self.wallets),
            ViewName::Completion => serde_json::to_writer(out, &self.completion),
            ViewName::Reviews => serde_json::to_writer(out, &self.reviews),
            ViewName::Orders => serde_json::to_writer(out, &self.orders),
            ViewName::Journal => serde_json::to_writer(out, &self.journal),
            ViewName::Timers => serde_json::to_writer(out, &self.timers),
        }
    }

    pub fn load_json(&mut self, view: ViewName, json: &[u8]) -> Result<(), serde_json::Error> {
        match view {
            ViewName::Escrow => self.escrow = serde_json::from_slice(json)?,
            ViewName::Wallets => self.wallets = serde_json::from_slice(json)?,
            ViewName::Completion => self.completion = serde_json::from_slice(json)?,
            ViewName::Reviews => self.reviews = serde_json::from_slice(json)?,
            ViewName::Orders => self.orders = serde_json::from_slice(json)?,
            ViewName::Journal => self.journal = serde_json::from_slice(json)?,
            ViewName::Timers => self.timers = serde_json::from_slice(json)?,
        }
        self.reindex();
        Ok(())
    }

    /// The rows that changed since the last call, per view: what a save writes.
    pub fn take_changes(&mut self) -> Result<Vec<(ViewName, RowChange)>, RowEncodeError> {
        let mut changes = Vec::new();
        for (view, take) in self.take_changes_jobs() {
            let mut rows: Vec<RowChange> = Vec::new();
            take(&mut rows)?;
            changes.extend(rows.into_iter().map(|row| (view, row)));
        }
        Ok(changes)
    }

    /// One job per view that takes its changed rows, for threads to run side by side (the
    /// views are disjoint). Biggest views first, so the jobs finish close together.
    pub fn take_changes_jobs(&mut self) -> Vec<(ViewName, TakeChanges<'_>)> {
        fn job<'a>(
            take: impl FnOnce(&mut dyn RowSink) -> Result<(), RowEncodeError> + Send + 'a,
        ) -> TakeChanges<'a> {
            Box::new(take)
        }
        let Views {
            escrow,
            wallets,
            completion,
            reviews,
            orders,
            journal,
            timers,
        } = self;
        vec![
            (ViewName::Orders, job(|rows| orders.take_changes(rows))),
            (ViewName::Journal, job(|rows| journal.take_changes(rows))),
            (ViewName::Reviews, job(|rows| reviews.take_changes(rows))),
            (ViewName::Wallets, job(|rows| wallets.take_changes(rows))),
            (
                ViewName::Completion,
                job(|rows| completion.take_changes(rows)),
            ),
            (ViewName::Timers, job(|rows| timers.take_changes(rows))),
            (ViewName::Escrow, job(|rows| escrow.take_changes(rows))),
        ]
    }

    /// What changed since the last call, copied, to be turned into rows later (see
    /// `PendingRows`): a save takes these while it holds the views, and serialises after.
    pub fn take_pending(&mut self) -> Vec<(ViewName, Vec<Box<dyn PendingRows>>)> {
        ViewName::ALL
            .into_iter()
            .map(|view| {
                let mut pending = Vec::new();
                match view {
                    ViewName::Escrow => self.escrow.take_pending(&mut pending),
                    ViewName::Wallets => self.wallets.take_pending(&mut pending),
                    ViewName::Completion => self.completion.take_pending(&mut pending),
                    ViewName::Reviews => self.reviews.take_pending(&mut pending),
                    ViewName::Orders => self.orders.take_pending(&mut pending),
                    ViewName::Journal => self.journal.take_pending(&mut pending),
                    ViewName::Timers => self.timers.take_pending(&mut pending),
                }
                (view, pending)
            })
            .collect()
    }

    /// Loads one stored row; call `reindex` once all are loaded.
    pub fn load_row(
        &mut self,
        view: ViewName,
        table: &str,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), RowError> {
        self.view_mut(view).load_row(table, key, value)
    }

    /// Room for `rows` rows of `view`'s `table`, before they are loaded.
    pub fn reserve_rows(&mut self, view: ViewName, table: &str, rows: usize) {
        self.view_mut(view).reserve_rows(table, rows);
    }

    pub(crate) fn view_mut(&mut self, view: ViewName) -> ViewMut<'_> {
        match view {
            ViewName::Escrow => ViewMut::Escrow(&mut self.escrow),
            ViewName::Wallets => ViewMut::Wallets(&mut self.wallets),
            ViewName::Completion => ViewMut::Completion(&mut self.completion),
            ViewName::Reviews => ViewMut::Reviews(&mut self.reviews),
            ViewName::Orders => ViewMut::Orders(&mut self.orders),
            ViewName::Journal => ViewMut::Journal(&mut self.journal),
            ViewName::Timers => ViewMut::Timers(&mut self.timers),
        }
    }

    /// Every view borrowed on its own, so that each can be loaded on a thread of its own.
    pub(crate) fn each_mut(&mut self) -> Vec<(ViewName, ViewMut<'_>)> {
        vec![
            (ViewName::Escrow, ViewMut::Escrow(&mut self.escrow)),
            (ViewName::Wallets, ViewMut::Wallets(&mut self.wallets)),
            (
                ViewName::Completion,
                ViewMut::Completion(&mut self.completion),
            ),
            (ViewName::Reviews, ViewMut::Reviews(&mut self.reviews)),
            (ViewName::Orders, ViewMut::Orders(&mut self.orders)),
            (ViewName::Journal, ViewMut::Journal(&mut self.journal)),
            (ViewName::Timers, ViewMut::Timers(&mut self.timers)),
        ]
    }

    /// Rebuilds the indexes derived from stored rows.
    pub fn reindex(&mut self) {
        for (_, mut view) in self.each_mut() {
            view.reindex();
        }
    }

    /// Counts every row of `view` as changed, after the view was replaced wholesale.
    pub fn mark_all_changed(&mut self, view: ViewName) {
        match view {
            ViewName::Escrow => self.escrow.mark_all_changed(),
            ViewName::Wallets => self.wallets.mark_all_changed(),
            ViewName::Completion => self.completion.mark_all_changed(),
            ViewName::Reviews => self.reviews.mark_all_changed(),
            ViewName::Orders => self.orders.mark_all_changed(),
            ViewName::Journal => self.journal.mark_all_changed(),
            ViewName::Timers => self.timers.mark_all_changed(),
        }
    }
}

/// One view of `Views`, borrowed alone.
pub(crate) enum ViewMut<'a> {
    Escrow(&'a mut escrow::EscrowView),
    Wallets(&'a mut wallets::WalletView),
    Completion(&'a mut completion::CompletionView),
    Reviews(&'a mut reviews::ReviewView),
    Orders(&'a mut orders::OrderView),
    Journal(&'a mut journal::JournalView),
    Timers(&'a mut timers::TimerView),
}

impl ViewMut<'_> {
    pub(crate) fn load_row(
        &mut self,
        table: &str,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), RowError> {
        match self {
            ViewMut::Escrow(view) => view.load_row(table, key, value),
            ViewMut::Wallets(view) => view.load_row(table, key, value),
            ViewMut::Completion(view) => view.load_row(table, key, value),
            ViewMut::Reviews(view) => view.load_row(table, key, value),
            ViewMut::Orders(view) => view.load_row(table, key, value),
            ViewMut::Journal(view) => view.load_row(table, key, value),
            ViewMut::Timers(view) => view.load_row(table, key, value),
        }
    }

    pub(crate) fn reserve_rows(&mut self, table: &str, rows: usize) {
        match self {
            ViewMut::Escrow(view) => view.reserve_rows(table, rows),
            ViewMut::Wallets(view) => view.reserve_rows(table, rows),
            ViewMut::Completion(view) => view.reserve_rows(table, rows),
            ViewMut::Reviews(view) => view.reserve_rows(table, rows),
            ViewMut::Orders(view) => view.reserve_rows(table, rows),
            ViewMut::Journal(view) => view.reserve_rows(table, rows),
            ViewMut::Timers(view) => view.reserve_rows(table, rows),
        }
    }

    /// The view's indexes derived from its rows; see `Views::reindex`.
    pub(crate) fn reindex(&mut self) {
        match self {
            ViewMut::Escrow(view) => view.reindex(),
            ViewMut::Wallets(view) => view.reindex(),
            ViewMut::Completion(view) => view.reindex(),
            ViewMut::Orders(view) => view.reindex(),
            ViewMut::Timers(view) => view.reindex(),
            ViewMut::Journal(view) => view.reindex(),
            ViewMut::Reviews(view) => view.reindex(),
        }
    }
}
