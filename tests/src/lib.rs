//! Black-box tests: the real `ledger` binary, a real store, real HTTP. Helpers live here; the tests live in `tests/tests/`.
