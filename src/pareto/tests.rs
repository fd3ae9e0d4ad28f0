//! Hand-made point sets for dominance, front ranks and hypervolume; every expected volume is
//! worked out in the comment beside it.

use super::*;

const MIN2: [Sense; 2] = [Sense::Minimize, Sense::Minimize];
const MIN3: [Sense; 3] = [Sense::Minimize, Sense::Minimize, Sense::Minimize];
/// (accuracy ↑, latency ↓)
const ACC_LAT: [Sense; 2] = [Sense::Maximize, Sense::Minimize];

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn dominance_needs_one_strict_improvement() {
    assert!(dominates(&[0.9, 1.0], &[0.8, 2.0], &ACC_LAT));
    // a tie in accuracy, better latency
    assert!(dominates(&[0.9, 1.0], &[0.9, 2.0], &ACC_LAT));
    // duplicates do not dominate each other
    assert!(!dominates(&[0.9, 1.0], &[0.9, 1.0], &ACC_LAT));
    // a trade-off: neither dominates
    assert!(!dominates(&[0.9, 2.0], &[0.8, 1.0], &ACC_LAT));
    assert!(!dominates(&[0.8, 1.0], &[0.9, 2.0], &ACC_LAT));
}

#[test]
fn front_ranks_with_ties_and_duplicates() {
    let pts = [
        [0.9, 3.0], // A: front
        [0.8, 2.0], // B: front
        [0.7, 1.0], // C: front
        [0.8, 3.0], // D: A has the same latency and more accuracy -> rank 1
        [0.7, 2.0], // E: C has the same accuracy and less latency -> rank 1
        [0.6, 3.0], // F: D and E dominate it -> rank 2
        [0.8, 2.0], // G: duplicate of B -> shares rank 0
    ];
    let ranks = front_ranks(&pts, &ACC_LAT).unwrap();
    assert_eq!(ranks, vec![0, 0, 0, 1, 1, 2, 0]);
    assert_eq!(non_dominated(&pts, &ACC_LAT).unwrap(), vec![0, 1, 2, 6]);
}

#[test]
fn front_ranks_on_a_subset_of_objectives() {
    // (accuracy, robust accuracy, latency): on accuracy alone point 0 dominates point 1, on all
    // three they trade off.
    let senses = senses(&[
        Objective::Accuracy,
        Objective::RobustAccuracy,
        Objective::Latency,
    ]);
    let pts = [[0.9, 0.3, 2.0], [0.8, 0.6, 2.0]];
    assert_eq!(front_ranks(&pts, &senses).unwrap(), vec![0, 0]);
    let acc_only: Vec<[f64; 1]> = pts.iter().map(|p| [p[0]]).collect();
    assert_eq!(
        front_ranks(&acc_only, &[Sense::Maximize]).unwrap(),
        vec![0, 1]
    );
}

#[test]
fn empty_set_has_no_ranks_and_zero_volume() {
    let pts: [[f64; 2]; 0] = [];
    assert!(front_ranks(&pts, &MIN2).unwrap().is_empty());
    let r = Reference::Given(vec![1.0, 1.0]);
    assert_eq!(hypervolume(&pts, &MIN2, &r).unwrap(), 0.0);
    assert_eq!(
        hypervolume(&pts, &MIN2, &Reference::WorstObserved),
        Err(ParetoError::NoPoints)
    );
}

#[test]
fn hypervolume_1d_is_the_distance_of_the_best_point() {
    // minimize, best 3, reference 10 -> 10 - 3 = 7
    let hv = hypervolume(
        &[[5.0], [3.0]],
        &[Sense::Minimize],
        &Reference::Given(vec![10.0]),
    );
    assert!(close(hv.unwrap(), 7.0));
}

#[test]
fn hypervolume_2d_staircase() {
    // (1,3), (2,2), (3,1) against (4,4): the staircase is three rectangles
    // (4-1)(4-3) + (4-2)(3-2) + (4-3)(2-1) = 3 + 2 + 1 = 6.
    let r = Reference::Given(vec![4.0, 4.0]);
    let stair = [[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]];
    assert!(close(hypervolume(&stair, &MIN2, &r).unwrap(), 6.0));
    // a duplicate of (2,2) and a dominated (3,3) add nothing: still 6
    let more = [[1.0, 3.0], [2.0, 2.0], [2.0, 2.0], [3.0, 3.0], [3.0, 1.0]];
    assert!(close(hypervolume(&more, &MIN2, &r).unwrap(), 6.0));
    // a point on the reference's boundary (x = 4) adds nothing: still 6
    let edge = [[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [4.0, 0.0]];
    assert!(close(hypervolume(&edge, &MIN2, &r).unwrap(), 6.0));
}

#[test]
fn hypervolume_2d_with_ties_in_x() {
    // (1,3) and (1,2) share x; only (1,2) counts: (4-1)(4-2) = 6, then (3,1): (4-3)(2-1) = 1 -> 7
    let r = Reference::Given(vec![4.0, 4.0]);
    let pts = [[1.0, 3.0], [3.0, 1.0], [1.0, 2.0]];
    assert!(close(hypervolume(&pts, &MIN2, &r).unwrap(), 7.0));
}

#[test]
fn hypervolume_2d_maximized_accuracy() {
    // (acc, latency) (0.9,3), (0.8,2), (0.7,1) against (0.6, 4): with accuracy negated this is
    // the staircase (0.9-0.6)(4-3) + (0.8-0.6)(3-2) + (0.7-0.6)(2-1) = 0.3 + 0.2 + 0.1 = 0.6.
    let pts = [[0.9, 3.0], [0.8, 2.0], [0.7, 1.0]];
    let r = Reference::Given(vec![0.6, 4.0]);
    assert!(close(hypervolume(&pts, &ACC_LAT, &r).unwrap(), 0.6));
}

#[test]
fn hypervolume_against_the_worst_observed_point() {
    // worst of (1,3), (2,2), (3,1) is (3,3); (1,3) and (3,1) lie on its boundary and add
    // nothing; (2,2) adds (3-2)(3-2) = 1.
    let pts = [[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]];
    assert_eq!(worst_point(&pts, &MIN2).unwrap(), vec![3.0, 3.0]);
    assert!(close(
        hypervolume(&pts, &MIN2, &Reference::WorstObserved).unwrap(),
        1.0
    ));
    // mixed senses: worst accuracy is the minimum, worst latency the maximum
    let acc = [[0.9, 3.0], [0.7, 1.0]];
    assert_eq!(worst_point(&acc, &ACC_LAT).unwrap(), vec![0.7, 3.0]);
}

#[test]
fn hypervolume_3d_two_overlapping_boxes() {
    // (0,0,1) and (1,1,0) against (2,2,2): boxes 2·2·1 = 4 and 1·1·2 = 2 overlap in
    // [1,2]×[1,2]×[1,2] = 1, so 4 + 2 - 1 = 5.
    let pts = [[0.0, 0.0, 1.0], [1.0, 1.0, 0.0]];
    let r = Reference::Given(vec![2.0, 2.0, 2.0]);
    assert!(close(hypervolume(&pts, &MIN3, &r).unwrap(), 5.0));
}

#[test]
fn hypervolume_3d_ties_in_z_and_duplicates() {
    // (0,1,0) and (1,0,0) against (2,2,1), both at z = 0: boxes 2·1·1 + 1·2·1 overlapping in
    // 1·1·1 -> 3; a duplicate of (0,1,0) changes nothing.
    let pts = [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
    let r = Reference::Given(vec![2.0, 2.0, 1.0]);
    assert!(close(hypervolume(&pts, &MIN3, &r).unwrap(), 3.0));
}

#[test]
fn hypervolume_3d_mixed_senses() {
    // (accuracy ↑, robust ↑, latency ↓) = (0.9, 0.5, 1.0) against (0.5, 0.0, 2.0):
    // (0.9-0.5)·(0.5-0)·(2-1) = 0.4·0.5·1 = 0.2
    let senses = [Sense::Maximize, Sense::Maximize, Sense::Minimize];
    let r = Reference::Given(vec![0.5, 0.0, 2.0]);
    let hv = hypervolume(&[[0.9, 0.5, 1.0]], &senses, &r).unwrap();
    assert!(close(hv, 0.2));
}

/// Counts the unit cells of [0,10)^3 that some integer point dominates: an exact volume to
/// compare the sliced sweep against.
fn grid_volume(pts: &[[f64; 3]]) -> f64 {
    let mut cells = 0;
    for i in 0..10 {
        for j in 0..10 {
            for k in 0..10 {
                let (x, y, z) = (i as f64, j as f64, k as f64);
                if pts.iter().any(|p| p[0] <= x && p[1] <= y && p[2] <= z) {
                    cells += 1;
                }
            }
        }
    }
    cells as f64
}

#[test]
fn hypervolume_3d_matches_cell_counting_on_integer_points() {
    // a fixed linear congruential sequence gives 20 sets of 1..8 integer points in [0,10)^3
    let mut state: u64 = 12345;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % 10) as f64
    };
    let r = Reference::Given(vec![10.0, 10.0, 10.0]);
    for n in 0..20 {
        let pts: Vec<[f64; 3]> = (0..1 + n % 8).map(|_| [next(), next(), next()]).collect();
        let hv = hypervolume(&pts, &MIN3, &r).unwrap();
        assert!(close(hv, grid_volume(&pts)), "set {n}: {pts:?}");
    }
}

#[test]
fn bad_input_is_an_error_naming_the_point() {
    let r = Reference::Given(vec![1.0, 1.0]);
    // NaN != NaN, so match on the variant rather than compare
    assert!(matches!(
        front_ranks(&[[0.0, f64::NAN]], &MIN2),
        Err(ParetoError::NotFinite {
            index: 0,
            objective: 1,
            ..
        })
    ));
    let ragged: [&[f64]; 2] = [&[0.0, 0.0], &[0.0]];
    assert!(matches!(
        hypervolume(&ragged, &MIN2, &r),
        Err(ParetoError::Dimension {
            index: 1,
            got: 1,
            expected: 2
        })
    ));
    assert!(matches!(
        hypervolume(&[[0.0, 0.0]], &MIN2, &Reference::Given(vec![1.0])),
        Err(ParetoError::ReferenceDimension {
            got: 1,
            expected: 2
        })
    ));
}

/// Counts the unit cells of [0,5)^4 that some integer point dominates.
fn grid_volume_4d(pts: &[[f64; 4]]) -> f64 {
    let mut cells = 0;
    for i in 0..5usize.pow(4) {
        let c: Vec<f64> = (0..4).map(|k| (i / 5usize.pow(k) % 5) as f64).collect();
        if pts.iter().any(|p| p.iter().zip(&c).all(|(v, x)| v <= x)) {
            cells += 1;
        }
    }
    cells as f64
}

#[test]
fn hypervolume_4d_matches_cell_counting_and_gains_match_differences() {
    // a fixed linear congruential sequence gives 20 sets of 1..8 integer points in [0,5)^4
    let mut state: u64 = 54321;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % 5) as f64
    };
    let min4 = [Sense::Minimize; 4];
    let r = vec![5.0; 4];
    for n in 0..20 {
        let pts: Vec<[f64; 4]> = (0..1 + n % 8)
            .map(|_| [next(), next(), next(), next()])
            .collect();
        let hv = hypervolume(&pts, &min4, &Reference::Given(r.clone())).unwrap();
        assert!(close(hv, grid_volume_4d(&pts)), "set {n}: {pts:?}");
        // The last point's gain over the others is the difference of the two volumes.
        let (rest, last) = pts.split_at(pts.len() - 1);
        let without = hypervolume(rest, &min4, &Reference::Given(r.clone())).unwrap();
        let gain = hypervolume_gain(rest, &last[0], &min4, &r).unwrap();
        assert!(
            close(gain, hv - without),
            "set {n}: {gain} vs {}",
            hv - without
        );
    }
}

#[test]
fn a_gain_in_mixed_senses_is_the_uncovered_part_of_the_box() {
    // (accuracy ↑, latency ↓) against (0, 10): (0.5, 4) covers [0, 0.5] x [4, 10] = 3; the new
    // point (0.8, 6) adds its box [0, 0.8] x [6, 10] = 3.2 minus the overlap 0.5 x 4 = 2: 1.2.
    let gain = hypervolume_gain(&[[0.5, 4.0]], &[0.8, 6.0], &ACC_LAT, &[0.0, 10.0]).unwrap();
    assert!(close(gain, 1.2), "{gain}");
    // A dominated point, and one not beating the reference, add nothing.
    assert_eq!(
        hypervolume_gain(&[[0.5, 4.0]], &[0.4, 5.0], &ACC_LAT, &[0.0, 10.0]),
        Ok(0.0)
    );
    assert_eq!(
        hypervolume_gain(&[[0.5, 4.0]], &[0.9, 11.0], &ACC_LAT, &[0.0, 10.0]),
        Ok(0.0)
    );
}
