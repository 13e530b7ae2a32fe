//! Timing several operations interleaved, for ratios between them.
//!
//! Criterion measures one function after another, and on a shared virtual
//! machine the speed of the whole machine drifts by ±10% between the two, as
//! much as the gaps the targets are about. Here each round times a block of
//! every operation in turn, so drift hits all of them alike, and the medians
//! over the rounds are compared.

use std::time::Instant;

/// Median nanoseconds per call of each operation, over `rounds` rounds of
/// `calls_per_block` calls of each in turn.
pub fn median_ns<const N: usize>(
    rounds: usize,
    calls_per_block: u32,
    operations: [&mut dyn FnMut(); N],
) -> [f64; N] {
    let mut samples: [Vec<f64>; N] = std::array::from_fn(|_| Vec::with_capacity(rounds));
    let mut operations = operations;
    for _ in 0..rounds.max(1) {
        for (operation, samples) in operations.iter_mut().zip(&mut samples) {
            let began = Instant::now();
            for _ in 0..calls_per_block {
                operation();
            }
            samples.push(began.elapsed().as_nanos() as f64 / f64::from(calls_per_block.max(1)));
        }
    }
    samples.map(|mut s| {
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_runs_its_blocks_in_turn() {
        let order = std::cell::RefCell::new(Vec::new());
        let mut first = || order.borrow_mut().push('a');
        let mut second = || order.borrow_mut().push('b');
        let medians = median_ns(3, 2, [&mut first, &mut second]);
        assert_eq!(
            order.into_inner(),
            "aabbaabbaabb".chars().collect::<Vec<_>>()
        );
        assert!(
            medians.iter().all(|m| m.is_finite() && *m >= 0.0),
            "{medians:?}"
        );
    }
}
