//! Exact hypervolume for one to three objectives: the measure of the region that the points
//! dominate and that dominates the reference point.
//!
//! Every objective is first turned into one to minimize (maximized values are negated), so
//! HV = vol( ∪_p [p_1, r_1] × … × [p_m, r_m] ). In 2-D a sweep over x adds one rectangle per
//! point that lowers y; in 3-D the volume is sliced at every distinct z and each slab is the
//! 2-D area of the points below it times the slab's height. Points that do not strictly beat
//! the reference in every objective add nothing.

use super::{check_points, ParetoError, Sense};

/// The reference point the hypervolume is measured against.
#[derive(Debug, Clone, PartialEq)]
pub enum Reference {
    /// The worst value observed per objective over the given points (the lowest accuracy, the
    /// highest latency, ...). A point that is worst in any objective then adds no volume, and
    /// the hypervolume is only comparable between sets measured against the same point.
    WorstObserved,
    /// A given point, one value per objective, in the objectives' own units and senses.
    Given(Vec<f64>),
}

/// The worst value per objective over `points` (minimum of a maximized objective, maximum of a
/// minimized one).
pub fn worst_point<P: AsRef<[f64]>>(
    points: &[P],
    senses: &[Sense],
) -> Result<Vec<f64>, ParetoError> {
    check_points(points, senses)?;
    if points.is_empty() {
        return Err(ParetoError::NoPoints);
    }
    let worst = senses
        .iter()
        .enumerate()
        .map(|(k, sense)| {
            let values = points.iter().map(|p| p.as_ref()[k]);
            match sense {
                Sense::Maximize => values.fold(f64::INFINITY, f64::min),
                Sense::Minimize => values.fold(f64::NEG_INFINITY, f64::max),
            }
        })
        .collect();
    Ok(worst)
}

/// The exact hypervolume of `points` against `reference`, for 1 to 3 objectives.
/// An empty point set has hypervolume 0 against a given reference.
pub fn hypervolume<P: AsRef<[f64]>>(
    points: &[P],
    senses: &[Sense],
    reference: &Reference,
) -> Result<f64, ParetoError> {
    check_points(points, senses)?;
    if senses.len() > 3 {
        return Err(ParetoError::TooManyObjectives(senses.len()));
    }
    let reference = match reference {
        Reference::WorstObserved => worst_point(points, senses)?,
        Reference::Given(r) => check_reference(r, senses)?,
    };
    let to_min = |k: usize, v: f64| match senses[k] {
        Sense::Maximize => -v,
        Sense::Minimize => v,
    };
    let r: Vec<f64> = reference
        .iter()
        .enumerate()
        .map(|(k, &v)| to_min(k, v))
        .collect();
    // Keep only points strictly better than the reference in every objective.
    let pts: Vec<Vec<f64>> = points
        .iter()
        .map(|p| {
            p.as_ref()
                .iter()
                .enumerate()
                .map(|(k, &v)| to_min(k, v))
                .collect::<Vec<_>>()
        })
        .filter(|p| p.iter().zip(&r).all(|(v, rv)| v < rv))
        .collect();
    Ok(match r.len() {
        1 => pts.iter().map(|p| r[0] - p[0]).fold(0.0, f64::max),
        2 => area_2d(pts.iter().map(|p| (p[0], p[1])).collect(), (r[0], r[1])),
        _ => volume_3d(&pts, [r[0], r[1], r[2]]),
    })
}

fn check_reference(r: &[f64], senses: &[Sense]) -> Result<Vec<f64>, ParetoError> {
    if r.len() != senses.len() {
        return Err(ParetoError::ReferenceDimension {
            got: r.len(),
            expected: senses.len(),
        });
    }
    if let Some((objective, &value)) = r.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(ParetoError::ReferenceNotFinite { objective, value });
    }
    Ok(r.to_vec())
}

/// Area dominated by minimization points that all lie strictly below-left of `r`.
fn area_2d(mut pts: Vec<(f64, f64)>, r: (f64, f64)) -> f64 {
    pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut area = 0.0;
    let mut y_bound = r.1;
    for (x, y) in pts {
        if y < y_bound {
            area += (r.0 - x) * (y_bound - y);
            y_bound = y;
        }
    }
    area
}

/// Volume dominated by minimization points that all lie strictly below `r`, sliced along z.
fn volume_3d(pts: &[Vec<f64>], r: [f64; 3]) -> f64 {
    let mut by_z: Vec<&Vec<f64>> = pts.iter().collect();
    by_z.sort_by(|a, b| a[2].total_cmp(&b[2]));
    let mut volume = 0.0;
    let mut i = 0;
    while i < by_z.len() {
        let z = by_z[i][2];
        // Every point with this z joins the slab that starts at z.
        while i < by_z.len() && by_z[i][2] == z {
            i += 1;
        }
        let z_next = by_z.get(i).map_or(r[2], |p| p[2]);
        let below: Vec<(f64, f64)> = by_z[..i].iter().map(|p| (p[0], p[1])).collect();
        volume += area_2d(below, (r[0], r[1])) * (z_next - z);
    }
    volume
}
