//! `ledger rebuild`: the views from the first event, beside the log.

use crate::support::*;

#[tokio::test]
async fn rebuild_folds_the_whole_log_into_the_read_model_database() {
    let dir = tempfile::tempdir().expect("dir");
    closed_order(dir.path()).await;
    let data_dir = dir.path().to_string_lossy().to_string();
    let (output, text) = ledger(&["rebuild", "--quiet", "--data-dir", &data_dir]);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("rebuilt every view from 4 events") && text.contains("checkpoint 3"),
        "{text}"
    );
    let projector = ledger_projections::Projector::open(dir.path()).expect("views");
    assert_eq!(projector.checkpoint(), Some(3));
    assert!(
        projector.views().escrow.totals().is_empty(),
        "a closed order holds nothing"
    );
    drop(projector);
    let (output, text) = ledger(&[
        "rebuild",
        "--quiet",
        "--view",
        "journal",
        "--data-dir",
        &data_dir,
    ]);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("rebuilt the journal view"), "{text}");
}

/// Damaged views stop the service at its start, which says how to get them back; a full
/// rebuild does, as it never reads them.
#[tokio::test]
async fn damaged_views_are_refolded_by_a_rebuild_that_does_not_read_them() {
    let dir = tempfile::tempdir().expect("dir");
    closed_order(dir.path()).await;
    let data_dir = dir.path().to_string_lossy().to_string();
    let (output, text) = ledger(&["rebuild", "--quiet", "--data-dir", &data_dir]);
    assert!(output.status.success(), "{text}");
    std::fs::write(dir.path().join("views.sqlite"), b"damaged").expect("damage");

    let (output, text) = ledger(&[
        "serve",
        "--dev",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data_dir,
    ]);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains(&format!("ledger rebuild --data-dir {data_dir}")),
        "the way out is named: {text}"
    );

    let (output, text) = ledger(&["rebuild", "--quiet", "--data-dir", &data_dir]);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("rebuilt every view from 4 events"), "{text}");
    let projector = ledger_projections::Projector::open(dir.path()).expect("views");
    assert_eq!(projector.checkpoint(), Some(3));
    assert_eq!(projector.views().orders.len(), 1);
}

#[test]
fn an_unknown_view_is_refused_with_the_list_of_views() {
    let (output, text) = ledger(&["rebuild", "--view", "everything"]);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.contains("escrow, wallets, completion, reviews, orders, journal, timers"),
        "{text}"
    );
}
