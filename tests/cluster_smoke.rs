//! The throwaway cluster harness itself.

use crate::support::pg::{Pair, column, connect};

#[tokio::test]
async fn clusters_start_with_logical_wal_and_separate_ports() {
    let pair = Pair::start();
    assert_ne!(pair.source.port(), pair.destination.port());
    let client = connect(&pair.source, "app").await;
    assert_eq!(
        column(&client, "show wal_level").await,
        [Some("logical".to_owned())]
    );
}
