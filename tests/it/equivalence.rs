use proptest::prelude::*;
use squash_testkit::{random_stack, LayerCompression};

use crate::support::check_equivalent;

/// Runs one random case; a hard link into the layers below the range that the range deletes is
/// a documented limitation (an `Unsupported` error), reported as `false`.
fn run(seed: u64, layers: usize, range: (usize, usize)) -> bool {
    let stack = random_stack(seed, layers);
    match check_equivalent(&stack, vec![range], LayerCompression::Gzip) {
        Ok(()) => true,
        Err(squash::Error::Unsupported { what, .. }) if what.contains("hard link to") => false,
        Err(e) => panic!("seed {seed}, {layers} layers, range {range:?}: {e}"),
    }
}

#[test]
fn bottom_middle_and_top_ranges() {
    let mut unsupported = 0;
    let mut total = 0;
    for seed in 0..60u64 {
        let layers = 6;
        for range in [(0, 2), (2, 4), (3, 5), (0, 5), (1, 1)] {
            total += 1;
            if !run(seed, layers, range) {
                unsupported += 1;
            }
        }
    }
    assert!(unsupported * 10 < total, "{unsupported} of {total} cases hit the lower-hard-link limitation");
}

#[test]
fn several_ranges_in_one_run() {
    for seed in 100..130u64 {
        let stack = random_stack(seed, 8);
        match check_equivalent(&stack, vec![(0, 2), (4, 5), (6, 7)], LayerCompression::Zstd) {
            Ok(()) | Err(squash::Error::Unsupported { .. }) => {}
            Err(e) => panic!("seed {seed}: {e}"),
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
