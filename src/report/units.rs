//! Units for numbers a person reads (tables, chart axes, compare's text): one unit per column,
//! scaled so the column's largest value reads as 1..1000 (µs, µJ, KiB, %), and one number of
//! decimals per column: the fewest that show every value exactly, at most four significant
//! digits of the largest. CSV files keep raw SI values; they are data.

use crate::pareto::Objective;

/// What a number measures, which decides its unit ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    Seconds,
    Joules,
    /// Binary prefixes (KiB = 1024 B): sizes of weights in memory.
    Bytes,
    /// A fraction in [0, 1], shown as a percentage.
    Fraction,
    /// A pure number (a reward, a Lipschitz bound).
    Plain,
}

impl Quantity {
    pub fn of(o: Objective) -> Quantity {
        match o {
            Objective::Accuracy | Objective::RobustAccuracy => Quantity::Fraction,
            Objective::Latency => Quantity::Seconds,
            Objective::Energy => Quantity::Joules,
            Objective::Size => Quantity::Bytes,
        }
    }

    /// (factor, unit) from the largest unit to the smallest.
    fn ladder(self) -> &'static [(f64, &'static str)] {
        const KIB: f64 = 1024.0;
        match self {
            Quantity::Seconds => &[(1.0, "s"), (1e3, "ms"), (1e6, "µs"), (1e9, "ns")],
            Quantity::Joules => &[
                (1.0, "J"),
                (1e3, "mJ"),
                (1e6, "µJ"),
                (1e9, "nJ"),
                (1e12, "pJ"),
            ],
            Quantity::Bytes => &[
                (1.0 / (KIB * KIB * KIB), "GiB"),
                (1.0 / (KIB * KIB), "MiB"),
                (1.0 / KIB, "KiB"),
                (1.0, "B"),
            ],
            Quantity::Fraction => &[(100.0, "%")],
            Quantity::Plain => &[(1.0, "")],
        }
    }
}

/// How values of one quantity are shown: multiplied by `factor`, with `unit` in the label.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub factor: f64,
    pub unit: &'static str,
}

impl Scale {
    /// The largest unit in which `max` reads as at least 1; the base unit (factor 1) for zero.
    pub fn for_max(q: Quantity, max: f64) -> Scale {
        let ladder = q.ladder();
        let max = max.abs();
        let pick = if max > 0.0 && max.is_finite() {
            ladder.iter().find(|(f, _)| max * f >= 1.0)
        } else {
            ladder.iter().find(|(f, _)| *f == 1.0)
        };
        let (factor, unit) = pick.or(ladder.last()).copied().unwrap_or((1.0, ""));
        Scale { factor, unit }
    }

    pub fn apply(self, v: f64) -> f64 {
        v * self.factor
    }
}

/// A column of numbers in one unit, with one number of decimals.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    factor: f64,
    unit: String,
    decimals: usize,
}

impl Column {
    /// The unit and decimals for `values` (missing values aside) of quantity `q`.
    pub fn new(q: Quantity, values: &[Option<f64>]) -> Column {
        let scale = Scale::for_max(q, max_abs(values));
        Column::scaled(scale.factor, scale.unit, values)
    }

    /// A column shown multiplied by `factor` in `unit` (e.g. a hypervolume in %·µs).
    pub fn scaled(factor: f64, unit: &str, values: &[Option<f64>]) -> Column {
        let shown: Vec<f64> = values.iter().flatten().map(|v| v * factor).collect();
        let max = shown.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
        // Four significant digits of the largest value, fewer when every value needs fewer.
        let most = if max > 0.0 && max.is_finite() {
            (3 - max.log10().floor() as i32).clamp(0, 6) as usize
        } else {
            0
        };
        let decimals = (0..most)
            .find(|&d| shown.iter().all(|&v| exact(v, d)))
            .unwrap_or(most);
        Column {
            factor,
            unit: unit.to_string(),
            decimals,
        }
    }

    /// The header with the unit: `latency (µs)`; a plain number keeps its name.
    pub fn header(&self, name: &str) -> String {
        if self.unit.is_empty() {
            name.to_string()
        } else {
            format!("{name} ({})", self.unit)
        }
    }

    /// A value in the column's unit, without the unit; `–` when absent.
    pub fn cell(&self, v: Option<f64>) -> String {
        match v {
            Some(v) if v.is_finite() => format!("{:.*}", self.decimals, v * self.factor),
            Some(v) => v.to_string(),
            None => "–".to_string(),
        }
    }

    /// Every value of `values` in the column's unit.
    pub fn cells(&self, values: &[Option<f64>]) -> Vec<String> {
        values.iter().map(|&v| self.cell(v)).collect()
    }

    /// A value with its unit: `2.246 µs`, `96.5 %`.
    pub fn with_unit(&self, v: Option<f64>) -> String {
        match v {
            Some(_) if !self.unit.is_empty() => format!("{} {}", self.cell(v), self.unit),
            _ => self.cell(v),
        }
    }
}

/// One value with its own unit: `2.246 µs`; `–` when absent.
pub fn quantity(q: Quantity, v: Option<f64>) -> String {
    Column::new(q, &[v]).with_unit(v)
}

fn max_abs(values: &[Option<f64>]) -> f64 {
    values
        .iter()
        .flatten()
        .filter(|v| v.is_finite())
        .fold(0.0_f64, |m, v| m.max(v.abs()))
}

/// `v` printed with `d` decimals is `v` itself (to rounding noise).
fn exact(v: f64, d: usize) -> bool {
    let p = 10f64.powi(d as i32);
    ((v * p).round() / p - v).abs() <= 1e-9 * v.abs().max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(q: Quantity, values: &[f64]) -> Column {
        let values: Vec<Option<f64>> = values.iter().map(|&v| Some(v)).collect();
        Column::new(q, &values)
    }

    #[test]
    fn latency_in_seconds_reads_in_microseconds() {
        // Latencies of a LeNet-5 on bitfusion (baseline run's pareto.csv).
        let c = col(
            Quantity::Seconds,
            &[1.912e-6, 2.0859e-6, 2.2459166666666667e-6],
        );
        assert_eq!(c.header("latency"), "latency (µs)");
        assert_eq!(c.cell(Some(2.2459166666666667e-6)), "2.246");
        assert_eq!(c.cell(Some(1.912e-6)), "1.912");
        assert_eq!(c.cell(None), "–");
    }

    #[test]
    fn fractional_bytes_read_in_kibibytes() {
        // 20320.25 B = 19.844 KiB; 45134 B = 44.08 KiB sets two decimals for the column.
        let c = col(Quantity::Bytes, &[20320.25, 45134.0]);
        assert_eq!(c.header("size"), "size (KiB)");
        assert_eq!(c.cell(Some(20320.25)), "19.84");
        assert_eq!(quantity(Quantity::Bytes, Some(900.0)), "900 B");
    }

    #[test]
    fn accuracies_read_as_percent_with_the_decimals_they_need() {
        let c = col(Quantity::Fraction, &[0.95, 0.972, 0.405]);
        assert_eq!(c.header("accuracy"), "accuracy (%)");
        assert_eq!(c.cell(Some(0.95)), "95.0");
        assert_eq!(c.cell(Some(0.405)), "40.5");
        assert_eq!(quantity(Quantity::Fraction, Some(0.911)), "91.1 %");
    }

    #[test]
    fn energy_picks_the_unit_of_its_largest_value() {
        assert_eq!(quantity(Quantity::Joules, Some(8.472e-6)), "8.472 µJ");
        assert_eq!(quantity(Quantity::Joules, Some(4.2e-10)), "420 pJ");
        assert_eq!(quantity(Quantity::Seconds, Some(1.5)), "1.5 s");
        assert_eq!(quantity(Quantity::Seconds, None), "–");
    }

    #[test]
    fn plain_numbers_keep_at_most_four_significant_digits() {
        let c = col(Quantity::Plain, &[1.555, -0.69, 0.085]);
        assert_eq!(c.header("reward"), "reward");
        assert_eq!(c.cell(Some(-0.69)), "-0.690");
        assert_eq!(col(Quantity::Plain, &[3.0, 12.0]).cell(Some(3.0)), "3");
    }

    #[test]
    fn zero_uses_the_base_unit() {
        assert_eq!(quantity(Quantity::Seconds, Some(0.0)), "0 s");
        assert_eq!(quantity(Quantity::Bytes, Some(0.0)), "0 B");
    }
}
