//! Exact hypervolume for any number of objectives: the measure of the region that the points
//! dominate and that dominates the reference point.
//!
//! Every objective is first turned into one to minimize (maximized values are negated), so
//! HV = vol( ∪_p [p_1, r_1] × … × [p_m, r_m] ). In 2-D a sweep over x adds one rectangle per
//! point that lowers y; in m ≥ 3 dimensions the volume is sliced at every distinct value of the
//! last objective and each slab is the (m−1)-D volume of the points below it times the slab's
//! height, O(n^(m−1) log n). Points that do not strictly beat the reference in every objective
//! add nothing.
//!
//! The gain of one more point p (`hypervolume_gain`) is the volume of its box [p, r] minus the
//! part of that box the set already dominates, which is the hypervolume of the set's points
//! each limited to the box (max(f, p) per minimized objective): exact, and cheap when p sits
//! among few of them.

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

/// The exact hypervolume of `points` against `reference`.
/// An empty point set has hypervolume 0 against a given reference.
pub fn hypervolume<P: AsRef<[f64]>>(
    points: &[P],
    senses: &[Sense],
    reference: &Reference,
) -> Result<f64, ParetoError> {
    check_points(points, senses)?;
    let reference = match reference {
        Reference::WorstObserved => worst_point(points, senses)?,
        Reference::Given(r) => check_reference(r, senses)?,
    };
    let r = to_min(&reference, senses);
    let pts: Vec<Vec<f64>> = points.iter().map(|p| to_min(p.as_ref(), senses)).collect();
    Ok(volume_min(pts, &r))
}

/// How much `point` adds to the hypervolume of `points` against `reference` (a given one):
/// HV(points ∪ {point}) − HV(points), computed as in the module doc.
pub fn hypervolume_gain<P: AsRef<[f64]>>(
    points: &[P],
    point: &[f64],
    senses: &[Sense],
    reference: &[f64],
) -> Result<f64, ParetoError> {
    check_points(points, senses)?;
    check_points(&[point], senses)?;
    let r = to_min(&check_reference(reference, senses)?, senses);
    let p = to_min(point, senses);
    if p.iter().zip(&r).any(|(v, rv)| v >= rv) {
        return Ok(0.0);
    }
    let limited: Vec<Vec<f64>> = points
        .iter()
        .map(|f| {
            let f = to_min(f.as_ref(), senses);
            f.iter().zip(&p).map(|(a, b)| a.max(*b)).collect()
        })
        .collect();
    let boxed: f64 = p.iter().zip(&r).map(|(v, rv)| rv - v).product();
    Ok((boxed - volume_min(limited, &r)).max(0.0))
}

/// Every objective as one to minimize: maximized values negated.
fn to_min(p: &[f64], senses: &[Sense]) -> Vec<f64> {
    p.iter()
        .zip(senses)
        .map(|(&v, s)| match s {
            Sense::Maximize => -v,
            Sense::Minimize => v,
        })
        .collect()
}

/// The hypervolume of minimization points against `r`, ignoring the points that do not beat
/// it strictly in every objective.
fn volume_min(mut pts: Vec<Vec<f64>>, r: &[f64]) -> f64 {
    pts.retain(|p| p.iter().zip(r).all(|(v, rv)| v < rv));
    match r.len() {
        1 => pts.iter().map(|p| r[0] - p[0]).fold(0.0, f64::max),
        2 => area_2d(pts.iter().map(|p| (p[0], p[1])).collect(), (r[0], r[1])),
        _ => volume_sliced(&pts, r),
    }
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

/// Volume dominated by minimization points (m ≥ 3 objectives) that all lie strictly below `r`,
/// sliced along the last objective z: each slab is the (m−1)-D volume of the points at or
/// below it.
fn volume_sliced(pts: &[Vec<f64>], r: &[f64]) -> f64 {
    let m = r.len() - 1;
    let mut by_z: Vec<&Vec<f64>> = pts.iter().collect();
    by_z.sort_by(|a, b| a[m].total_cmp(&b[m]));
    let mut volume = 0.0;
    let mut i = 0;
    while i < by_z.len() {
        let z = by_z[i][m];
        // Every point with this z joins the slab that starts at z.
        while i < by_z.len() && by_z[i][m] == z {
            i += 1;
        }
        let z_next = by_z.get(i).map_or(r[m], |p| p[m]);
        let below = &by_z[..i];
        let slab = if m == 2 {
            area_2d(below.iter().map(|p| (p[0], p[1])).collect(), (r[0], r[1]))
        } else {
            let lower: Vec<Vec<f64>> = below.iter().map(|p| p[..m].to_vec()).collect();
            volume_sliced(&lower, &r[..m])
        };
        volume += slab * (z_next - z);
    }
    volume
}
