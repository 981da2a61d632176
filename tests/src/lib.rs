//! Black-box tests: real processes, a real store, and (with the service) real HTTP.
//! The tests live in `tests/tests/`; helper programs they drive live in `src/bin/`.
