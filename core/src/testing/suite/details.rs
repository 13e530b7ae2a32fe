//! Several installations read together, as notifications read them.

use super::{detail, report, slc};
use crate::catalogue::ConditionCode;
use crate::ids::ResellerId;
use crate::testing::TestBackend;
use crate::testing::fixture::Fixture;

/// Each of `reseller`'s installations named, once, exactly as read one at a
/// time without history (though it has some); missing ones and other resellers' are left out.
pub(crate) async fn installations_are_read_together_for_their_reseller_only(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let full = [(ConditionCode::StorageFull, "D:", "recording drive full")];
    let first = fx.site("alpha", "M01-C01-0021").await;
    let second = fx.site("alpha", "M01-C01-0022").await;
    let quiet = fx.site("alpha", "M01-C01-0023").await;
    let theirs = fx.site("beta", "M02-C01-0021").await;
    report(&fx, &first, "rs-1", 1, &full).await;
    report(&fx, &first, "rs-2", 1, &[]).await;
    report(&fx, &second, "rs-1", 1, &full).await;
    report(&fx, &second, "rs-3", 1, &[]).await;
    report(&fx, &theirs, "rs-1", 1, &full).await;
    let alpha = first.reseller.clone();

    let wanted = [
        second.slc.clone(),
        theirs.slc.clone(),
        slc("M09-C09-0099"),
        first.slc.clone(),
        second.slc.clone(),
        quiet.slc.clone(),
    ];
    let mut read = fx
        .store
        .installation_details(&alpha, &wanted)
        .await
        .expect("read together");
    read.sort_by(|a, b| a.installation.slc.cmp(&b.installation.slc));
    let mut expected = Vec::new();
    for site in [&first, &second, &quiet] {
        let one = fx
            .store
            .installation_detail(&alpha, &site.slc, 0)
            .await
            .expect("read one")
            .expect("found");
        expected.push(one);
    }
    assert!(
        !detail(&fx, &first).await.history.is_empty(),
        "it has history"
    );
    assert_eq!(read, expected);
    assert_eq!(read[0].servers.len(), 2, "with its servers");
    assert_eq!(read[0].active_conditions.len(), 1, "and its conditions");
    // Each installation's own rows, where a backend reads them all at once.
    assert_eq!(read[1].servers.len(), 2);
    assert_eq!(read[1].active_conditions.len(), 1);
    assert!(read[2].servers.is_empty() && read[2].active_conditions.is_empty());

    let beta = ResellerId::new("beta").expect("id");
    let none = fx
        .store
        .installation_details(&beta, std::slice::from_ref(&first.slc))
        .await
        .expect("read");
    assert!(
        none.is_empty(),
        "another reseller's is not found: {none:#?}"
    );
    let empty = fx
        .store
        .installation_details(&alpha, &[])
        .await
        .expect("read nothing");
    assert!(empty.is_empty());
}
