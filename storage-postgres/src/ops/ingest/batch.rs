//! How a batch of signs of life reaches the database: the common case (each
//! an available server's heartbeat, each server once) as one statement
//! without a transaction; the rest on the locking path, in their order.

use carewatch_core::Result;
use carewatch_core::store::{SignOfLife, WriteOutcome, rules};

use crate::PostgresStore;

/// [`carewatch_core::store::Store::record_signs_of_life`] on PostgreSQL.
pub(crate) async fn record_batch(
    store: &PostgresStore,
    batch: &[SignOfLife],
) -> Result<Vec<WriteOutcome>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    // One heartbeat of an available server: one statement, no transaction.
    if let [sign] = batch
        && store
            .single(sign, |c, s| Box::pin(super::heartbeat_in_place(c, s)))
            .await?
    {
        return Ok(vec![WriteOutcome::Applied(None)]);
    }
    if batch.len() == 1 {
        if batch[0].remembered.is_some() {
            return Ok(vec![WriteOutcome::Readmit]);
        }
        return store
            .write(batch, |c, b| Box::pin(super::record_signs_of_life(c, b)))
            .await;
    }
    // Heartbeats of available servers, each server once in the batch:
    // one statement for them all, no transaction. The rest (new, late or
    // unavailable servers, duplicates, a server's second heartbeat) take
    // the locking path, in their order.
    let shared = rules::shares_its_server(batch);
    let (once, repeated): (Vec<usize>, Vec<usize>) = (0..batch.len()).partition(|&i| !shared[i]);
    let signs: Vec<SignOfLife> = once.iter().map(|&i| batch[i].clone()).collect();
    let applied = store
        .single(&signs[..], |c, s| {
            Box::pin(super::heartbeats_in_place(c, s))
        })
        .await?;
    let mut rest: Vec<usize> = once
        .iter()
        .zip(&applied)
        .filter(|(_, applied)| !**applied)
        .map(|(&i, _)| i)
        .chain(repeated)
        .collect();
    let mut outcomes = vec![WriteOutcome::Applied(None); batch.len()];
    // Remembered signs apply only in place.
    rest.retain(|&i| {
        let remembered = batch[i].remembered.is_some();
        if remembered {
            outcomes[i] = WriteOutcome::Readmit;
        }
        !remembered
    });
    if rest.is_empty() {
        return Ok(outcomes);
    }
    rest.sort_unstable();
    let signs: Vec<SignOfLife> = rest.iter().map(|&i| batch[i].clone()).collect();
    let judged = store
        .write(&signs[..], |c, b| {
            Box::pin(super::record_signs_of_life(c, b))
        })
        .await?;
    for (i, outcome) in rest.into_iter().zip(judged) {
        outcomes[i] = outcome;
    }
    Ok(outcomes)
}
