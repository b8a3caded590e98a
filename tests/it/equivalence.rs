use proptest::prelude::*;
use squash_testkit::{random_stack, LayerCompression};

use crate::support::check_equivalent;

/// Runs one random case.
fn run(seed: u64, layers: usize, range: (usize, usize)) {
    let stack = random_stack(seed, layers);
    if let Err(e) = check_equivalent(&stack, vec![range], LayerCompression::Gzip) {
        panic!("seed {seed}, {layers} layers, range {range:?}: {e}");
    }
}

#[test]
fn bottom_middle_and_top_ranges() {
    for seed in 0..60u64 {
        for range in [(0, 2), (2, 4), (3, 5), (0, 5), (1, 1)] {
            run(seed, 6, range);
        }
    }
}

#[test]
fn several_ranges_in_one_run() {
    for seed in 100..130u64 {
        let stack = random_stack(seed, 8);
        if let Err(e) = check_equivalent(&stack, vec![(0, 2), (4, 5), (6, 7)], LayerCompression::Zstd) {
            panic!("seed {seed}: {e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
    #[test]
    fn random_stacks_and_ranges(seed in any::<u64>(), layers in 2usize..8, start in 0usize..8, len in 1usize..8) {
        let start = start % layers;
        let end = (start + len - 1).min(layers - 1);
        run(seed, layers, (start, end));
    }
}
