//! The money totals of a set of views, as finance reads them after a replay.

use ledger_domain::Currency;
use ledger_projections::{Account, Views};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// Per currency: escrow held, wallet credit, commission earned, and the trial balance.
pub fn render(views: &Views) -> String {
    let mut wallets: BTreeMap<Currency, Decimal> = BTreeMap::new();
    for (_, money) in views.wallets.balances() {
        *wallets.entry(money.currency()).or_default() += money.amount();
    }
    let escrow = views.escrow.totals();
    let trial = views.journal.trial_balance();
    let mut currencies: Vec<Currency> = escrow
        .keys()
        .chain(wallets.keys())
        .chain(trial.keys())
        .copied()
        .collect();
    currencies.sort();
    currencies.dedup();
    let mut out = format!("orders: {}\n", views.orders.len());
    for currency in currencies {
        let shown = |mut amount: Decimal| {
            // At the currency's minor unit: 0.00 EUR, not 0.
            amount.rescale(currency.minor_unit());
            amount
        };
        let get =
            |m: &BTreeMap<Currency, Decimal>| shown(m.get(&currency).copied().unwrap_or_default());
        out.push_str(&format!(
            "{currency}: escrow held {}, wallet credit {}, commission {}, trial balance {}\n",
            get(&escrow),
            get(&wallets),
            shown(views.journal.balance(Account::Commission, currency)),
            get(&trial),
        ));
    }
    out
}
