//! Batches of hundreds of items, as the service's group commit and batched
//! admissions send under load, answer every item in order.

use super::{detail, rs, sign, slc, t};
use crate::store::{AdmissionQuery, SignOfLife, WriteOutcome};
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START, Site};

/// Enough installations that a batch touches many of each table's pages,
/// three servers each.
const SITES: usize = 70;
const SERVERS_PER_SITE: usize = 3;

/// A batch of 210 new servers, then one of 212 signs of life (each server
/// again, a retry, a stale message) and 211 admissions: every item answered,
/// in order, and everything stored.
pub(crate) async fn large_batches_answer_every_item_in_order(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let mut sites: Vec<Site> = Vec::with_capacity(SITES);
    for n in 0..SITES {
        sites.push(fx.site("alpha", &format!("M01-C01-{n:04}")).await);
    }
    let servers: Vec<(&Site, String)> = sites
        .iter()
        .flat_map(|site| (0..SERVERS_PER_SITE).map(move |k| (site, format!("rs-{k}"))))
        .collect();

    // Every server new: each one changes its installation's summary.
    let first: Vec<SignOfLife> = servers
        .iter()
        .map(|(site, server)| sign(&site.slc, server, 1, "first", START))
        .collect();
    let outcomes = fx
        .store
        .record_signs_of_life(&first)
        .await
        .expect("the first large batch");
    assert_eq!(outcomes.len(), first.len(), "one outcome per sign of life");
    for (n, outcome) in outcomes.iter().enumerate() {
        assert!(
            matches!(outcome, WriteOutcome::Applied(Some(_))),
            "sign of life {n} is a new server's and changes its installation: {outcome:?}"
        );
    }

    // Every server again (rows that only move forward), then a retry of the
    // batch's first item and a message older than it.
    let mut second: Vec<SignOfLife> = servers
        .iter()
        .map(|(site, server)| sign(&site.slc, server, 2, "second", t(10)))
        .collect();
    second.push(second[0].clone());
    second.push(sign(&sites[0].slc, "rs-0", 1, "first", t(10)));
    let outcomes = fx
        .store
        .record_signs_of_life(&second)
        .await
        .expect("the second large batch");
    let mut expected = vec![WriteOutcome::Applied(None); servers.len()];
    expected.push(WriteOutcome::Duplicate);
    expected.push(WriteOutcome::Stale { last_accepted: 2 });
    assert_eq!(
        outcomes, expected,
        "each server applied once, then the retry and the stale message judged after them"
    );

    // One admission per server, and an unknown installation last.
    let mut queries: Vec<AdmissionQuery> = servers
        .iter()
        .map(|(site, server)| AdmissionQuery {
            slc: site.slc.clone(),
            server: rs(server),
            key: site.key.id(),
        })
        .collect();
    queries.push(AdmissionQuery {
        slc: slc("M09-C09-0009"),
        server: rs("rs-0"),
        key: sites[0].key.id(),
    });
    let answers = fx
        .store
        .admissions(&queries)
        .await
        .expect("large admissions");
    assert_eq!(answers.len(), queries.len(), "one answer per query");
    for (query, answer) in queries.iter().zip(&answers[..servers.len()]) {
        let admission = answer
            .as_ref()
            .expect("each admission")
            .as_ref()
            .unwrap_or_else(|| panic!("{} is registered", query.slc));
        let server = admission.server.as_ref().expect("the server is known");
        assert_eq!(
            (&admission.installation.slc, &server.server, server.cursor),
            (&query.slc, &query.server, second[0].cursor),
            "the answer for {query:?} is its own, at sequence 2 (the same digest for all)"
        );
    }
    assert!(
        matches!(answers.last(), Some(Ok(None))),
        "the unknown installation is not admitted: {:?}",
        answers.last()
    );

    for site in &sites {
        let d = detail(&fx, site).await;
        assert_eq!(d.servers.len(), SERVERS_PER_SITE, "{}'s servers", site.slc);
        for s in &d.servers {
            assert_eq!(
                (s.cursor.sequence, s.last_seen_at),
                (2, t(10)),
                "{} {} ends at the second batch",
                site.slc,
                s.server
            );
        }
    }
}
