//! Pareto fronts: dominance over any subset of objectives, front ranks (non-dominated sorting)
//! and exact hypervolume (and the gain of one more point) for any number of objectives.
//!
//! A point is a slice of objective values, one per entry of a `senses` slice. `a` dominates `b`
//! when `a` is no worse than `b` in every objective and strictly better in at least one; equal
//! points (duplicates) do not dominate each other, so they share a rank.

use serde::{Deserialize, Serialize};

mod hypervolume;
#[cfg(test)]
mod tests;

pub use hypervolume::{hypervolume, hypervolume_gain, worst_point, Reference};

/// Whether larger or smaller values of an objective are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sense {
    Maximize,
    Minimize,
}

/// The objectives a scored policy is judged on; in files, their snake_case names (`accuracy`,
/// `robust_accuracy`, `latency`, `energy`, `size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Clean accuracy, a fraction in [0, 1]; larger is better.
    Accuracy,
    /// Robust accuracy (worst case over the attack suite); larger is better.
    RobustAccuracy,
    /// Latency in seconds on the device profile; smaller is better.
    Latency,
    /// Energy in joules; smaller is better.
    Energy,
    /// Weight size in bytes at their bitwidths; smaller is better.
    Size,
}

impl Objective {
    /// All objectives, in the order of the episodes.csv columns.
    pub const ALL: [Objective; 5] = [
        Objective::Accuracy,
        Objective::RobustAccuracy,
        Objective::Latency,
        Objective::Energy,
        Objective::Size,
    ];

    /// Maximize accuracy and robust accuracy; minimize latency, energy and size.
    pub fn sense(self) -> Sense {
        match self {
            Objective::Accuracy | Objective::RobustAccuracy => Sense::Maximize,
            Objective::Latency | Objective::Energy | Objective::Size => Sense::Minimize,
        }
    }

    /// Whether this is a price on the device (latency, energy, size) rather than a score.
    pub fn is_cost(self) -> bool {
        self.sense() == Sense::Minimize
    }

    /// The episodes.csv column that holds this objective.
    pub fn column(self) -> &'static str {
        match self {
            Objective::Accuracy => "accuracy",
            Objective::RobustAccuracy => "robust_accuracy",
            Objective::Latency => "latency_s",
            Objective::Energy => "energy_j",
            Objective::Size => "size_bytes",
        }
    }

    /// A human-readable name, for chart axes and tables.
    pub fn label(self) -> &'static str {
        match self {
            Objective::Accuracy => "accuracy",
            Objective::RobustAccuracy => "robust accuracy",
            Objective::Latency => "latency",
            Objective::Energy => "energy",
            Objective::Size => "size",
        }
    }
}

/// The senses of a list of objectives.
pub fn senses(objectives: &[Objective]) -> Vec<Sense> {
    objectives.iter().map(|o| o.sense()).collect()
}

/// Errors of the Pareto computations; each names the offending point or objective.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParetoError {
    #[error("no objectives given")]
    NoObjectives,
    #[error("point {index} has {got} values, expected one per objective ({expected})")]
    Dimension {
        index: usize,
        got: usize,
        expected: usize,
    },
    #[error("point {index}, objective {objective}: value {value} is not finite")]
    NotFinite {
        index: usize,
        objective: usize,
        value: f64,
    },
    #[error("the reference point has {got} values, expected {expected}")]
    ReferenceDimension { got: usize, expected: usize },
    #[error("reference value {value} of objective {objective} is not finite")]
    ReferenceNotFinite { objective: usize, value: f64 },
    #[error("the worst observed reference point needs at least one point")]
    NoPoints,
}

/// Checks that every point has one finite value per objective.
pub(crate) fn check_points<P: AsRef<[f64]>>(
    points: &[P],
    senses: &[Sense],
) -> Result<(), ParetoError> {
    if senses.is_empty() {
        return Err(ParetoError::NoObjectives);
    }
    for (index, p) in points.iter().enumerate() {
        let p = p.as_ref();
        if p.len() != senses.len() {
            return Err(ParetoError::Dimension {
                index,
                got: p.len(),
                expected: senses.len(),
            });
        }
        if let Some((objective, &value)) = p.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(ParetoError::NotFinite {
                index,
                objective,
                value,
            });
        }
    }
    Ok(())
}

/// True when `a` is no worse than `b` in every objective and strictly better in at least one.
/// Both slices must have one value per entry of `senses`.
pub fn dominates(a: &[f64], b: &[f64], senses: &[Sense]) -> bool {
    let mut strictly = false;
    for ((&x, &y), &sense) in a.iter().zip(b).zip(senses) {
        let (better, worse) = match sense {
            Sense::Maximize => (x > y, x < y),
            Sense::Minimize => (x < y, x > y),
        };
        if worse {
            return false;
        }
        strictly |= better;
    }
    strictly
}

/// The front rank of every point (non-dominated sorting, Deb et al.'s NSGA-II): rank 0 is the
/// Pareto front, rank 1 the front once rank 0 is removed, and so on. O(n² · objectives).
pub fn front_ranks<P: AsRef<[f64]>>(
    points: &[P],
    senses: &[Sense],
) -> Result<Vec<usize>, ParetoError> {
    check_points(points, senses)?;
    let n = points.len();
    // dominated_by[i]: how many points dominate i; beats[i]: the points i dominates.
    let mut dominated_by = vec![0usize; n];
    let mut beats: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in (i + 1)..n {
            let (a, b) = (points[i].as_ref(), points[j].as_ref());
            if dominates(a, b, senses) {
                beats[i].push(j);
                dominated_by[j] += 1;
            } else if dominates(b, a, senses) {
                beats[j].push(i);
                dominated_by[i] += 1;
            }
        }
    }
    let mut ranks = vec![0usize; n];
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_by[i] == 0).collect();
    let mut rank = 0;
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            ranks[i] = rank;
            for &j in &beats[i] {
                dominated_by[j] -= 1;
                if dominated_by[j] == 0 {
                    next.push(j);
                }
            }
        }
        current = next;
        rank += 1;
    }
    Ok(ranks)
}

/// The indices of the non-dominated points (rank 0), in input order.
pub fn non_dominated<P: AsRef<[f64]>>(
    points: &[P],
    senses: &[Sense],
) -> Result<Vec<usize>, ParetoError> {
    let ranks = front_ranks(points, senses)?;
    Ok((0..points.len()).filter(|&i| ranks[i] == 0).collect())
}
