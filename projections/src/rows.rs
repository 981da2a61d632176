//! How views are stored: one row per entity (an order, a user, an account) or per run of
//! appended items (postings, statement lines), written only when it changed. A save therefore
//! costs in proportion to what the batch touched, not to the size of the views.

use ledger_domain::{OrderId, UserId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// The views' maps: a fold touches a dozen entries per event among hundreds of thousands, at
/// random, and a hash lookup is a fraction of a B-tree's descent. Randomly seeded, so that
/// chosen keys (an order id is the buyer's to pick) cannot make the buckets collide. Nothing
/// may depend on its iteration order: what is stored, listed or compared is sorted first.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
pub type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// A stored row's change: the new value, or `None` for a row to delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowChange {
    pub table: &'static str,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// Where taken rows go: a `Vec` for a save, or chunks sent on to the inserter while the
/// rest are still being made, in a rebuild (so that its memory is reused, not fresh pages for
/// every row of every view). A row is lent, and the sink copies what it keeps: a rebuild's
/// chunks keep their rows' bytes side by side instead of two allocations a row.
pub trait RowSink {
    /// A row to write, or with no value, to delete.
    fn push(&mut self, table: &'static str, key: &[u8], value: Option<&[u8]>);
    fn reserve(&mut self, _additional: usize) {}
}

impl RowSink for Vec<RowChange> {
    fn push(&mut self, table: &'static str, key: &[u8], value: Option<&[u8]>) {
        Vec::push(
            self,
            RowChange {
                table,
                key: key.to_vec(),
                value: value.map(<[u8]>::to_vec),
            },
        );
    }
    fn reserve(&mut self, additional: usize) {
        Vec::reserve(self, additional);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("row {table}/{key}: {detail}")]
pub struct RowError {
    pub table: String,
    pub key: String,
    pub detail: String,
}

impl RowError {
    pub(crate) fn unknown_table(table: &str, key: &[u8]) -> RowError {
        RowError::new(table, key, "unknown table")
    }

    fn new(table: &str, key: &[u8], detail: impl ToString) -> RowError {
        RowError {
            table: table.to_owned(),
            key: key_text(key),
            detail: detail.to_string(),
        }
    }
}

/// A stored key as people read it: an id hyphenated, anything else in hex.
fn key_text(key: &[u8]) -> String {
    match uuid::Uuid::from_slice(key) {
        Ok(id) => id.hyphenated().to_string(),
        Err(_) => key.iter().map(|byte| format!("{byte:02x}")).collect(),
    }
}

/// Why a row could not be written.
pub type RowEncodeError = rmp_serde::encode::Error;

/// Serialises rows through one reused buffer, which it lends: a row's own `Vec`, grown by
/// doubling, cost several allocations and copies per row (fresh pages from the kernel, in a
/// rebuild).
///
/// Rows are MessagePack with structs as arrays: less than half the bytes of JSON, and a
/// rebuild's storing and a start's loading spend their time on little else. Field order is
/// therefore the format: changing a stored type's fields needs a new
/// `READ_MODEL_SCHEMA_VERSION` (the views are then rebuilt from the log on open).
#[derive(Default)]
pub(crate) struct RowBytes(Vec<u8>);

impl RowBytes {
    pub(crate) fn of<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<&[u8], RowEncodeError> {
        self.0.clear();
        rmp_serde::encode::write(&mut self.0, value)?;
        Ok(&self.0)
    }
}

pub(crate) fn decode_row<T: DeserializeOwned>(
    table: &str,
    key: &[u8],
    value: &[u8],
) -> Result<T, RowError> {
    rmp_serde::from_slice(value).map_err(|e| RowError::new(table, key, e))
}

/// A key as stored: bytes whose order is the key's order. An id is its 16 bytes, not its
/// 36 characters of text: the key is in every row and again in the table's index.
pub trait RowKey: Ord + Hash + Clone {
    /// Appends the key to `out`: rows are taken by the hundred thousand, into one buffer.
    fn write_key(&self, out: &mut Vec<u8>);
    fn from_key(key: &[u8]) -> Option<Self>;

    fn to_key(&self) -> Vec<u8> {
        let mut key = Vec::new();
        self.write_key(&mut key);
        key
    }
}

impl RowKey for OrderId {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0.as_bytes());
    }
    fn from_key(key: &[u8]) -> Option<Self> {
        uuid::Uuid::from_slice(key).ok().map(OrderId)
    }
}

impl RowKey for UserId {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0.as_bytes());
    }
    fn from_key(key: &[u8]) -> Option<Self> {
        uuid::Uuid::from_slice(key).ok().map(UserId)
    }
}

/// A map that remembers which keys changed since its changes were last taken.
#[derive(Clone, Debug)]
pub struct Tracked<K, V> {
    map: FastMap<K, V>,
    changed: Changes<K>,
}

/// What a save must write of a `Tracked` map.
#[derive(Clone, Debug)]
enum Changes<K> {
    /// These keys: their rows are written, or deleted if the key is gone.
    Keys(FastSet<K>),
    /// Every row, into a table that holds none: after a rebuild, or for a fold that never
    /// saves. Nothing is recorded per key, which is most of what a rebuild would otherwise
    /// spend on bookkeeping.
    Everything,
}

impl<K, V> Default for Tracked<K, V> {
    fn default() -> Self {
        Tracked {
            map: FastMap::default(),
            changed: Changes::Keys(FastSet::default()),
        }
    }
}

impl<K: Hash + Eq + Clone> Changes<K> {
    fn record(&mut self, key: &K) {
        if let Changes::Keys(keys) = self {
            if !keys.contains(key) {
                keys.insert(key.clone());
            }
        }
    }

    /// The changed keys in key order (the store's rows are keyed in that order), or `None`
    /// for every key.
    fn take_sorted(&mut self) -> Option<Vec<K>>
    where
        K: Ord,
    {
        match std::mem::replace(self, Changes::Keys(FastSet::default())) {
            Changes::Keys(keys) => {
                let mut keys: Vec<K> = keys.into_iter().collect();
                keys.sort_unstable();
                Some(keys)
            }
            Changes::Everything => None,
        }
    }
}

impl<K: RowKey, V> Tracked<K, V> {
    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let value = self.map.get_mut(key)?;
        self.changed.record(key);
        Some(value)
    }

    pub fn get_or_default(&mut self, key: &K) -> &mut V
    where
        V: Default,
    {
        self.changed.record(key);
        self.map.entry(key.clone()).or_default()
    }

    /// Gives back the value it replaced, if any.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.changed.record(&key);
        self.map.insert(key, value)
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let removed = self.map.remove(key);
        if removed.is_some() {
            self.changed.record(key);
        }
        removed
    }

    /// In no particular order; see `sorted`.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter()
    }

    /// In no particular order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.map.values()
    }

    /// Every entry in key order: what is stored, listed or compared.
    fn sorted(&self) -> Vec<(&K, &V)> {
        let mut entries: Vec<(&K, &V)> = self.map.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        entries
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every row counts as changed, and the stored table is known to be empty: after the
    /// stored rows were dropped, or before a fold that will be stored whole.
    pub fn mark_all_changed(&mut self) {
        self.changed = Changes::Everything;
    }

    /// Room for `rows` stored rows about to be loaded, so that the map does not rehash
    /// itself into fresh pages at every doubling while it grows.
    pub fn reserve(&mut self, rows: usize) {
        self.map.reserve(rows);
    }
}

impl<K: RowKey, V: Serialize> Tracked<K, V> {
    pub fn take_changes<O: RowSink + ?Sized>(
        &mut self,
        table: &'static str,
        out: &mut O,
    ) -> Result<(), RowEncodeError> {
        let mut bytes = RowBytes::default();
        let mut key_bytes = Vec::new();
        match self.changed.take_sorted() {
            Some(keys) => {
                for key in keys {
                    key_bytes.clear();
                    key.write_key(&mut key_bytes);
                    let value = self.map.get(&key).map(|v| bytes.of(v)).transpose()?;
                    out.push(table, &key_bytes, value);
                }
            }
            None => {
                out.reserve(self.map.len());
                for (key, value) in self.sorted() {
                    key_bytes.clear();
                    key.write_key(&mut key_bytes);
                    out.push(table, &key_bytes, Some(bytes.of(value)?));
                }
            }
        }
        Ok(())
    }
}

impl<K, V> Tracked<K, V>
where
    K: RowKey + Send + 'static,
    V: Clone + Serialize + Send + 'static,
{
    /// Like `take_changes`, but copies the changed values instead of serialising them, so
    /// that the caller can let go of the views before the costly part.
    pub fn take_pending(&mut self, table: &'static str, out: &mut Vec<Box<dyn PendingRows>>) {
        let rows = match self.changed.take_sorted() {
            Some(keys) => keys
                .into_iter()
                .map(|key| {
                    let value = self.map.get(&key).cloned();
                    (key, value)
                })
                .collect(),
            None => self
                .sorted()
                .into_iter()
                .map(|(key, value)| (key.clone(), Some(value.clone())))
                .collect(),
        };
        out.push(Box::new(PendingTracked { table, rows }));
    }
}

/// Rows taken from a view whose bytes are yet to be made: see `take_pending`.
pub trait PendingRows: Send {
    fn into_rows(self: Box<Self>, out: &mut Vec<RowChange>) -> Result<(), RowEncodeError>;
}

struct PendingTracked<K, V> {
    table: &'static str,
    rows: Vec<(K, Option<V>)>,
}

impl<K: RowKey + Send, V: Serialize + Send> PendingRows for PendingTracked<K, V> {
    fn into_rows(self: Box<Self>, out: &mut Vec<RowChange>) -> Result<(), RowEncodeError> {
        let mut bytes = RowBytes::default();
        let mut key_bytes = Vec::new();
        for (key, value) in self.rows {
            key_bytes.clear();
            key.write_key(&mut key_bytes);
            let value = value.as_ref().map(|v| bytes.of(v)).transpose()?;
            RowSink::push(out, self.table, &key_bytes, value);
        }
        Ok(())
    }
}

impl<K: RowKey, V: DeserializeOwned> Tracked<K, V> {
    pub fn load_row(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<(), RowError> {
        let parsed = K::from_key(key).ok_or_else(|| RowError::new(table, key, "unreadable key"))?;
        self.map.insert(parsed, decode_row(table, key, value)?);
        Ok(())
    }
}

impl<K: Hash + Eq, V: PartialEq> PartialEq for Tracked<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<K: Hash + Eq, V: Eq> Eq for Tracked<K, V> {}

/// In key order, so that equal views serialise to equal bytes.
impl<K: RowKey + Serialize, V: Serialize> Serialize for Tracked<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.sorted())
    }
}

impl<'de, K: Deserialize<'de> + Hash + Eq, V: Deserialize<'de>> Deserialize<'de> for Tracked<K, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Tracked {
            map: FastMap::deserialize(deserializer)?,
            changed: Changes::Keys(FastSet::default()),
        })
    }
}

/// An appended row's key: its first item's index, big-endian so that byte order is index
/// order.
fn index_key(index: usize) -> [u8; 8] {
    (index as u64).to_be_bytes()
}

fn index_of_key(key: &[u8]) -> Option<usize> {
    let bytes: [u8; 8] = key.try_into().ok()?;
    usize::try_from(u64::from_be_bytes(bytes)).ok()
}

/// An append-only list that remembers how much of it was already stored.
#[derive(Clone, Debug)]
pub struct Appended<T> {
    items: Vec<T>,
    // Invariant: saved <= items.len().
    saved: usize,
}

impl<T> Default for Appended<T> {
    fn default() -> Self {
        Appended {
            items: Vec::new(),
            saved: 0,
        }
    }
}

impl<T> Appended<T> {
    pub fn push(&mut self, item: T) {
        self.items.push(item);
    }

    pub fn as_slice(&self) -> &[T] {
        &self.items
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn mark_all_changed(&mut self) {
        self.saved = 0;
    }

    /// Room for the items of `rows` stored rows about to be loaded.
    pub fn reserve(&mut self, rows: usize) {
        self.items
            .reserve(rows.saturating_mul(APPENDED_ITEMS_PER_ROW));
    }
}

/// Items stored in one row of an `Appended` list. A row per item made a rebuild insert
/// ~800,000 rows per million events; a live save rewrites at most one partly filled row.
pub const APPENDED_ITEMS_PER_ROW: usize = 256;

impl<T: Serialize> Appended<T> {
    /// Rows keyed by their first item's index, each a JSON array of up to
    /// `APPENDED_ITEMS_PER_ROW` items: the row that held the last stored items is written
    /// again with the new ones, and the rows after it are new.
    pub fn take_changes<O: RowSink + ?Sized>(
        &mut self,
        table: &'static str,
        out: &mut O,
    ) -> Result<(), RowEncodeError> {
        let first = self.first_unsaved_row();
        self.saved = self.items.len();
        chunk_rows(table, first, &self.items[first..], out)
    }

    /// The index of the first item of the first row a save must write.
    fn first_unsaved_row(&self) -> usize {
        if self.saved == self.items.len() {
            self.items.len()
        } else {
            self.saved / APPENDED_ITEMS_PER_ROW * APPENDED_ITEMS_PER_ROW
        }
    }
}

impl<T: Clone + Serialize + Send + 'static> Appended<T> {
    /// Like `take_changes`, copying the items instead of serialising them.
    pub fn take_pending(&mut self, table: &'static str, out: &mut Vec<Box<dyn PendingRows>>) {
        let first = self.first_unsaved_row();
        self.saved = self.items.len();
        out.push(Box::new(PendingAppended {
            table,
            first,
            items: self.items[first..].to_vec(),
        }));
    }
}

/// `items` stored as rows, the first of them being item `first` (a multiple of the row size).
fn chunk_rows<T: Serialize, O: RowSink + ?Sized>(
    table: &'static str,
    first: usize,
    items: &[T],
    out: &mut O,
) -> Result<(), RowEncodeError> {
    let mut bytes = RowBytes::default();
    for (row, items) in items.chunks(APPENDED_ITEMS_PER_ROW).enumerate() {
        let index = first + row * APPENDED_ITEMS_PER_ROW;
        out.push(table, &index_key(index), Some(bytes.of(items)?));
    }
    Ok(())
}

struct PendingAppended<T> {
    table: &'static str,
    first: usize,
    items: Vec<T>,
}

impl<T: Serialize + Send> PendingRows for PendingAppended<T> {
    fn into_rows(self: Box<Self>, out: &mut Vec<RowChange>) -> Result<(), RowEncodeError> {
        chunk_rows(self.table, self.first, &self.items, out)
    }
}

impl<T: DeserializeOwned> Appended<T> {
    /// Rows must come in key order: each holds the items that follow those loaded.
    pub fn load_row(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<(), RowError> {
        let expected = self.items.len();
        if index_of_key(key) != Some(expected) || !expected.is_multiple_of(APPENDED_ITEMS_PER_ROW) {
            return Err(RowError::new(
                table,
                key,
                format!("expected the row of item {expected}"),
            ));
        }
        let items: Vec<T> = decode_row(table, key, value)?;
        if items.is_empty() || items.len() > APPENDED_ITEMS_PER_ROW {
            return Err(RowError::new(
                table,
                key,
                format!("{} items in one row", items.len()),
            ));
        }
        self.items.extend(items);
        self.saved = self.items.len();
        Ok(())
    }
}

impl<T: PartialEq> PartialEq for Appended<T> {
    fn eq(&self, other: &Self) -> bool {
        self.items == other.items
    }
}

impl<T: Eq> Eq for Appended<T> {}

impl<T: Serialize> Serialize for Appended<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.items.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Appended<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let items = Vec::deserialize(deserializer)?;
        Ok(Appended {
            saved: items.len(),
            items,
        })
    }
}

/// The stored tables of a view, named once: generates `take_changes`, `load_row`,
/// `reserve_rows` and `mark_all_changed` over them, so that no table can be saved but not loaded, or the reverse.
macro_rules! stored_tables {
    ($($table:literal => $field:ident),+ $(,)?) => {
        pub(crate) fn take_changes<O: $crate::rows::RowSink + ?Sized>(
            &mut self,
            out: &mut O,
        ) -> Result<(), $crate::rows::RowEncodeError> {
            $(self.$field.take_changes($table, out)?;)+
            Ok(())
        }

        pub(crate) fn load_row(
            &mut self,
            table: &str,
            key: &[u8],
            value: &[u8],
        ) -> Result<(), $crate::rows::RowError> {
            match table {
                $($table => self.$field.load_row(table, key, value),)+
                _ => Err($crate::rows::RowError::unknown_table(table, key)),
            }
        }

        pub(crate) fn mark_all_changed(&mut self) {
            $(self.$field.mark_all_changed();)+
        }

        /// Room for `rows` rows of `table` about to be loaded; an unknown table is left to
        /// `load_row` to report.
        pub(crate) fn reserve_rows(&mut self, table: &str, rows: usize) {
            match table {
                $($table => self.$field.reserve(rows),)+
                _ => {}
            }
        }

        pub(crate) fn take_pending(
            &mut self,
            out: &mut Vec<Box<dyn $crate::rows::PendingRows>>,
        ) {
            $(self.$field.take_pending($table, out);)+
        }
    };
}
pub(crate) use stored_tables;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn order(n: u128) -> OrderId {
        OrderId(uuid::Uuid::from_u128(n))
    }

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Dated {
        #[serde(with = "ledger_domain::instant")]
        at: chrono::DateTime<chrono::Utc>,
        #[serde(default, with = "ledger_domain::instant::option")]
        maybe: Option<chrono::DateTime<chrono::Utc>>,
    }

    proptest! {
        /// Rows hold instants as seconds and nanoseconds: every instant chrono holds comes
        /// back the same, to the nanosecond, leap seconds included.
        #[test]
        fn instants_in_rows_come_back_the_same(
            seconds in chrono::DateTime::<chrono::Utc>::MIN_UTC.timestamp()
                ..=chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp(),
            nanos in 0u32..2_000_000_000,
            present in any::<bool>(),
        ) {
            let Some(at) = chrono::DateTime::from_timestamp(seconds, nanos) else {
                return Ok(()); // a leap-second nanosecond on a second that is not one
            };
            let dated = Dated { at, maybe: present.then_some(at) };
            let row = RowBytes::default().of(&dated)?.to_vec();
            prop_assert_eq!(decode_row::<Dated>("t", b"k", &row)?, dated);
        }

        /// Rows hold amounts as counts of minor units: every amount the log can hold, in
        /// currencies of 0 to 4 decimal places, past what a `u64` counts too, comes back the
        /// same, and takes no more room than its text did.
        #[test]
        fn amounts_in_rows_come_back_the_same(
            units in prop_oneof![0u128..1_000_000, 0u128..(1 << 96)],
            code in proptest::sample::select(vec!["JPY", "EUR", "BHD", "CLF", "USD"]),
        ) {
            let currency = ledger_domain::Currency::from_code(code)?;
            let signed = i128::try_from(units).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let amount = rust_decimal::Decimal::from_i128_with_scale(signed, currency.minor_unit());
            let json = format!(r#"{{"amount":"{amount}","currency":"{code}"}}"#);
            let money: ledger_domain::Money = serde_json::from_str(&json)?;
            let row = RowBytes::default().of(&money)?.to_vec();
            prop_assert_eq!(decode_row::<ledger_domain::Money>("t", b"k", &row)?, money);
            let text_row = rmp_serde::to_vec(&(amount.to_string(), code))?;
            prop_assert!(row.len() <= text_row.len() + 1, "{} bytes against {}", row.len(), text_row.len());
        }

        /// The map hashes, but what leaves it is in key order: rows reach the store sorted, and
        /// two equal views (each with its own random seed) serialise to the same bytes.
        #[test]
        fn tracked_maps_leave_in_key_order(keys in proptest::collection::vec(any::<u128>(), 0..64)) {
            let mut changed = Tracked::default();
            let mut reversed = Tracked::default();
            for key in &keys {
                changed.insert(order(*key), *key);
            }
            for key in keys.iter().rev() {
                reversed.insert(order(*key), *key);
            }
            let mut sorted: Vec<u128> = keys.clone();
            sorted.sort_unstable();
            sorted.dedup();
            let mut rows = Vec::new();
            changed.take_changes("t", &mut rows)?;
            let row_keys: Vec<Vec<u8>> = rows.iter().map(|r| r.key.clone()).collect();
            let expected: Vec<Vec<u8>> = sorted.iter().map(|k| order(*k).to_key()).collect();
            prop_assert_eq!(row_keys, expected);
            prop_assert_eq!(serde_json::to_vec(&changed)?, serde_json::to_vec(&reversed)?);
        }
    }

    /// Applies saves to a table as the engine does (upsert by key), then loads it back.
    fn stored_and_loaded(pushes_between_saves: &[usize]) -> (Vec<u64>, Vec<u64>) {
        let mut list = Appended::default();
        let mut table: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut next = 0u64;
        for &pushes in pushes_between_saves {
            for _ in 0..pushes {
                list.push(next);
                next += 1;
            }
            let mut changes = Vec::new();
            list.take_changes("items", &mut changes).expect("serialise");
            for change in changes {
                table.insert(change.key, change.value.expect("never deleted"));
            }
        }
        let mut loaded: Appended<u64> = Appended::default();
        for (key, value) in &table {
            loaded.load_row("items", key, value).expect("load");
        }
        (list.as_slice().to_vec(), loaded.as_slice().to_vec())
    }

    proptest! {
        #[test]
        fn appended_items_come_back_in_order_whatever_the_saves(
            pushes in proptest::collection::vec(0usize..600, 1..6)
        ) {
            let (kept, loaded) = stored_and_loaded(&pushes);
            prop_assert_eq!(kept, loaded);
        }
    }

    #[test]
    fn a_save_rewrites_only_the_row_it_left_partly_filled() {
        let mut list = Appended::default();
        for item in 0..300u64 {
            list.push(item);
        }
        let mut first = Vec::new();
        list.take_changes("items", &mut first).expect("serialise");
        assert_eq!(first.len(), 2, "items 0-255 and 256-299");
        list.push(300);
        let mut second = Vec::new();
        list.take_changes("items", &mut second).expect("serialise");
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].key, index_key(256));
    }

    /// A stored count of minor units past any `Decimal`, or of the wrong length, is an error
    /// naming the row, not a panic.
    #[test]
    fn an_amount_no_decimal_holds_is_refused() {
        // MessagePack by hand: an array of two, "EUR", then the count as `bin 8` bytes.
        let row_of = |units: &[u8]| {
            let mut row = vec![0x92, 0xa3, b'E', b'U', b'R', 0xc4, units.len() as u8];
            row.extend_from_slice(units);
            row
        };
        let sixteen = |units: u128| row_of(&units.to_be_bytes());
        let one_cent: ledger_domain::Money =
            decode_row("wallets", b"k", &sixteen(1)).expect("16 bytes read");
        assert_eq!(one_cent.to_string(), "0.01 EUR");
        for row in [sixteen(1 << 96), sixteen(u128::MAX), row_of(&[1; 8])] {
            let error =
                decode_row::<ledger_domain::Money>("wallets", b"k", &row).expect_err("refused");
            assert!(error.to_string().contains("wallets"), "{error}");
        }
    }

    #[test]
    fn a_row_out_of_place_is_refused() {
        let mut list: Appended<u64> = Appended::default();
        let error = list
            .load_row("items", &index_key(256), b"[1]")
            .expect_err("the row of item 0 must come first");
        assert!(error.to_string().contains("expected the row of item 0"));
    }
}
