//! Developer and operator tooling behind the `ledger` CLI: history, export/import, rebuild, verify, simulate. Filled in by the replay-tools issue.
