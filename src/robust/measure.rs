//! Which robust accuracy a reward uses: the worst case at one radius, at the largest one, or the
//! area under the worst-case curve; `[reward] robust_eps` in an experiment.

use serde::Serialize;

use super::breakdown::Breakdown;
use super::suite::{EpsWorst, SuiteReport};

/// Which robust accuracy a reward uses: the worst case at one radius, at the largest one, or the
/// area under the worst-case curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RobustMeasure {
    /// The worst case at this radius (one of `robust_radii`).
    Eps(f32),
    Named(MeasureName),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MeasureName {
    /// The worst case at the largest radius (`headline_eps`).
    Max,
    /// The area under the worst-case curve from eps 0 (clean accuracy) to the largest radius,
    /// by the trapezoid rule, divided by that radius: 1 = robust at every radius up to it.
    Auc,
}

impl Default for RobustMeasure {
    fn default() -> Self {
        RobustMeasure::Named(MeasureName::Max)
    }
}

/// A radius (number) or "max" / "auc"; anything else is an error saying so.
impl<'de> serde::Deserialize<'de> for RobustMeasure {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RobustMeasure;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "a radius (e.g. 0.1), \"max\" or \"auc\"")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<RobustMeasure, E> {
                Ok(RobustMeasure::Eps(v as f32))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RobustMeasure, E> {
                Ok(RobustMeasure::Eps(v as f32))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RobustMeasure, E> {
                match v {
                    "max" => Ok(RobustMeasure::Named(MeasureName::Max)),
                    "auc" => Ok(RobustMeasure::Named(MeasureName::Auc)),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl std::fmt::Display for RobustMeasure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RobustMeasure::Eps(e) => write!(f, "{e}"),
            RobustMeasure::Named(MeasureName::Max) => write!(f, "\"max\""),
            RobustMeasure::Named(MeasureName::Auc) => write!(f, "\"auc\""),
        }
    }
}

impl SuiteReport {
    /// Which stage broke each example first at the radius `measure` is taken at (the largest
    /// for `max` and `auc`); None for a radius the suite did not run.
    pub fn broken_by(&self, measure: RobustMeasure) -> Option<Breakdown> {
        let eps = match measure {
            RobustMeasure::Eps(eps) => eps,
            RobustMeasure::Named(_) => self.headline_eps,
        };
        self.at_eps(eps).map(|w| w.broken_by)
    }

    /// The worst case at radius `eps`, if the suite ran it.
    fn at_eps(&self, eps: f32) -> Option<&EpsWorst> {
        self.by_eps.iter().find(|w| w.eps == eps)
    }

    /// The robust accuracy `measure` names (0 for a radius the suite did not run).
    pub fn robust(&self, measure: RobustMeasure) -> f64 {
        match measure {
            RobustMeasure::Eps(eps) => self.at_eps(eps).map_or(0.0, |w| w.worst_case),
            RobustMeasure::Named(MeasureName::Max) => self.worst_case,
            RobustMeasure::Named(MeasureName::Auc) => {
                let mut area = 0.0;
                let (mut x0, mut y0) = (0.0, self.clean);
                for w in &self.by_eps {
                    area += (w.eps as f64 - x0) * (w.worst_case + y0) / 2.0;
                    (x0, y0) = (w.eps as f64, w.worst_case);
                }
                if x0 > 0.0 {
                    area / x0
                } else {
                    self.clean
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::robust::{EpsWorst, Masking};

    fn report(clean: f64, curve: &[(f32, f64)]) -> SuiteReport {
        SuiteReport {
            examples: 100,
            clean,
            attacks: Vec::new(),
            headline_eps: curve.last().map_or(0.0, |c| c.0),
            worst_case: curve.last().map_or(clean, |c| c.1),
            by_eps: (curve.iter())
                .map(|&(eps, worst_case)| EpsWorst {
                    eps,
                    worst_case,
                    broken_by: Breakdown::attribute(eps, &[], &[]),
                })
                .collect(),
            square: Vec::new(),
            masking: Masking {
                zero_grad_fraction: 0.0,
                eps_rise: false,
                above_transfer: false,
                gradient_free_gain: 0.0,
                above_gradient_free: false,
            },
            cost: Default::default(),
        }
    }

    #[test]
    fn a_radius_max_and_the_area_under_the_curve() {
        // clean 1.0; 0.8 at 0.1; 0.2 at 0.2: trapezoids (0.1·0.9 + 0.1·0.5) / 0.2 = 0.7.
        let r = report(1.0, &[(0.1, 0.8), (0.2, 0.2)]);
        assert_eq!(r.robust(RobustMeasure::Eps(0.1)), 0.8);
        assert_eq!(r.robust(RobustMeasure::Named(MeasureName::Max)), 0.2);
        let auc = r.robust(RobustMeasure::Named(MeasureName::Auc));
        assert!((auc - 0.7).abs() < 1e-9, "{auc}");
        // The cliff the area sees and one radius hides: same 0.8 at 0.1, nothing at 0.2.
        let cliff = report(1.0, &[(0.1, 0.8), (0.2, 0.0)]);
        assert!(cliff.robust(RobustMeasure::Named(MeasureName::Auc)) < auc);
    }

    #[test]
    fn parses_a_radius_or_a_name_and_rejects_anything_else() {
        #[derive(serde::Deserialize)]
        struct T {
            m: RobustMeasure,
        }
        let m = |s: &str| toml::from_str::<T>(&format!("m = {s}")).map(|t| t.m);
        assert_eq!(m("0.1").unwrap(), RobustMeasure::Eps(0.1));
        assert_eq!(
            m("\"auc\"").unwrap(),
            RobustMeasure::Named(MeasureName::Auc)
        );
        assert_eq!(m("\"max\"").unwrap(), RobustMeasure::default());
        let e = m("\"median\"").unwrap_err().to_string();
        assert!(e.contains("median") && e.contains("\"auc\""), "{e}");
    }
}
