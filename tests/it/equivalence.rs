use proptest::prelude::*;
use squash_testkit::{
    random_changeset_stack, random_stack, random_stack_implicit_parents, LayerCompression,
};

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
        if let Err(e) =
            check_equivalent(&stack, vec![(0, 2), (4, 5), (6, 7)], LayerCompression::Zstd)
        {
            panic!("seed {seed}: {e}");
        }
    }
}

#[test]
fn implicit_parents_survive_in_every_range() {
    for seed in 200..260u64 {
        let stack = random_stack_implicit_parents(seed, 6);
        for range in [(0, 2), (2, 4), (3, 5), (0, 5), (1, 1), (4, 5)] {
            if let Err(e) = check_equivalent(&stack, vec![range], LayerCompression::Gzip) {
                panic!("seed {seed}, implicit parents, range {range:?}: {e}");
            }
        }
    }
}

#[test]
fn stacks_written_as_engines_write_them() {
    for seed in 300..360u64 {
        let stack = random_changeset_stack(seed, 6);
        for range in [(0, 2), (2, 4), (3, 5), (0, 5), (1, 1), (1, 5)] {
            if let Err(e) = check_equivalent(&stack, vec![range], LayerCompression::Gzip) {
                panic!("seed {seed}, changesets, range {range:?}: {e}");
            }
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

    #[test]
    fn random_stacks_with_implicit_parents(seed in any::<u64>(), layers in 2usize..8, start in 0usize..8, len in 1usize..8) {
        let start = start % layers;
        let end = (start + len - 1).min(layers - 1);
        let stack = random_stack_implicit_parents(seed, layers);
        if let Err(e) = check_equivalent(&stack, vec![(start, end)], LayerCompression::Gzip) {
            panic!("seed {seed}, {layers} layers, implicit parents, range {:?}: {e}", (start, end));
        }
    }
}

/// Seeds that once failed, kept as plain tests.
#[test]
fn seeds_that_failed() {
    // A hard link to a lower file whose name the range turns into a directory.
    run(17289479492098035222, 3, (1, 2));
    // A hard link to a lower file that the range replaces after the link, while another lower
    // name of the file survives.
    run(15934494783588942852, 4, (3, 3));
    // A directory that only markers made below the range (Docker makes it, umoci does not),
    // implied again and emptied inside the range.
    let stack = random_stack_implicit_parents(11807520847732651568, 6);
    if let Err(e) = check_equivalent(&stack, vec![(3, 5)], LayerCompression::Gzip) {
        panic!("implicit parents: {e}");
    }
}
