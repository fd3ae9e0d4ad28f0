//! Which attack broke each example first: the per-example worst case at one radius split by the
//! stage (the clean pass, FGSM, PGD, the transfer attack, Square) that first misclassified it, in
//! the order the suite runs them. It answers "which attack broke this policy" for the search's
//! worst-case score, where an attack only sees what the earlier ones left standing, so a
//! first-broken count is the one per-attack number that early exit leaves well defined.

use serde::Serialize;

use super::suite::AttackKind;

/// Examples first broken by each stage at `eps`, and the examples that held through all of
/// them. `None`: the stage did not run at this radius. The counts add up to the examples
/// attacked, and `held / examples` is the worst case at `eps`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Breakdown {
    pub eps: f32,
    pub clean: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fgsm: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pgd: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub square: Option<u32>,
    pub held: u32,
}

impl Breakdown {
    /// Attributes every example to the first stage that broke it. `clean` is per example
    /// whether the clean pass classified it correctly; each stage's `held` whether the example
    /// survived that attack at `eps` (examples an attack skipped count as held: an earlier
    /// stage broke them).
    pub fn attribute(eps: f32, clean: &[bool], stages: &[(AttackKind, &[bool])]) -> Breakdown {
        let mut standing = clean.to_vec();
        let mut b = Breakdown {
            eps,
            clean: count(clean.iter().map(|&c| !c)),
            fgsm: None,
            pgd: None,
            transfer: None,
            square: None,
            held: 0,
        };
        for &(kind, held) in stages {
            let broke = count((standing.iter().zip(held)).map(|(&s, &h)| s && !h));
            standing.iter_mut().zip(held).for_each(|(s, &h)| *s &= h);
            let slot = match kind {
                AttackKind::Fgsm => &mut b.fgsm,
                AttackKind::Pgd => &mut b.pgd,
                AttackKind::Transfer => &mut b.transfer,
                AttackKind::Square => &mut b.square,
            };
            *slot = Some(slot.unwrap_or(0) + broke);
        }
        b.held = count(standing.into_iter());
        b
    }

    /// The examples attacked (a u64: the counts of a breakdown read from a file may be any u32).
    pub fn examples(&self) -> u64 {
        let attacks: u64 = self.attacks().map(|(_, n)| u64::from(n)).sum();
        u64::from(self.clean) + attacks + u64::from(self.held)
    }

    /// The attacks that ran and how many examples each broke first, in suite order.
    pub fn attacks(&self) -> impl Iterator<Item = (&'static str, u32)> {
        [
            ("fgsm", self.fgsm),
            ("pgd", self.pgd),
            ("transfer", self.transfer),
            ("square", self.square),
        ]
        .into_iter()
        .filter_map(|(name, n)| n.map(|n| (name, n)))
    }
}

fn count(flags: impl Iterator<Item = bool>) -> u32 {
    flags.filter(|&f| f).count() as u32
}

/// The text form episodes.csv's `broken_by` column and the score cache hold:
/// `eps=0.1;clean=6;fgsm=30;pgd=12;transfer=0;square=2;held=150`.
impl std::fmt::Display for Breakdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "eps={};clean={}", self.eps, self.clean)?;
        for (name, n) in self.attacks() {
            write!(f, ";{name}={n}")?;
        }
        write!(f, ";held={}", self.held)
    }
}

/// What the text form must look like, for errors.
pub const BREAKDOWN_FORMAT: &str =
    "`eps=<radius>;clean=<n>;[fgsm=<n>;pgd=<n>;transfer=<n>;square=<n>;]held=<n>`";

impl std::str::FromStr for Breakdown {
    type Err = ();

    /// The `Display` form: `eps`, `clean` and `held` required, the attacks optional, each key
    /// at most once.
    fn from_str(text: &str) -> Result<Breakdown, ()> {
        let mut eps = None;
        let mut counts: [Option<u32>; 6] = [None; 6];
        const KEYS: [&str; 6] = ["clean", "fgsm", "pgd", "transfer", "square", "held"];
        for part in text.split(';') {
            let (key, value) = part.split_once('=').ok_or(())?;
            if key == "eps" {
                let e: f32 = value.parse().map_err(|_| ())?;
                if eps.replace(e).is_some() || !e.is_finite() || e < 0.0 {
                    return Err(());
                }
                continue;
            }
            let i = KEYS.iter().position(|k| *k == key).ok_or(())?;
            if counts[i].replace(value.parse().map_err(|_| ())?).is_some() {
                return Err(());
            }
        }
        let [clean, fgsm, pgd, transfer, square, held] = counts;
        Ok(Breakdown {
            eps: eps.ok_or(())?,
            clean: clean.ok_or(())?,
            fgsm,
            pgd,
            transfer,
            square,
            held: held.ok_or(())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_example_goes_to_the_first_stage_that_broke_it() {
        let clean = [true, true, true, true, false, true];
        let fgsm = [true, false, true, true, true, true];
        // PGD skipped the example FGSM broke (counted as held) and breaks example 2.
        let pgd = [true, true, false, true, true, true];
        // The transfer attack also breaks examples 1 and 2: already counted.
        let transfer = [true, false, false, true, false, true];
        let square = [true, true, true, false, true, true];
        let b = Breakdown::attribute(
            0.1,
            &clean,
            &[
                (AttackKind::Fgsm, &fgsm),
                (AttackKind::Pgd, &pgd),
                (AttackKind::Transfer, &transfer),
                (AttackKind::Square, &square),
            ],
        );
        let counts = (b.clean, b.fgsm, b.pgd, b.transfer, b.square, b.held);
        assert_eq!(counts, (1, Some(1), Some(1), Some(0), Some(1), 2));
        assert_eq!(b.examples(), 6);
        assert_eq!(
            b.to_string(),
            "eps=0.1;clean=1;fgsm=1;pgd=1;transfer=0;square=1;held=2"
        );
        assert_eq!(b.to_string().parse(), Ok(b));
        let huge: Breakdown = "eps=0.1;clean=4294967295;pgd=4294967295;held=4294967295"
            .parse()
            .unwrap();
        assert_eq!(huge.examples(), 3 * u64::from(u32::MAX));
    }

    #[test]
    fn stages_that_did_not_run_are_absent_and_bad_text_is_refused() {
        let b = Breakdown::attribute(0.3, &[true, false], &[(AttackKind::Pgd, &[false, true])]);
        assert_eq!(b.to_string(), "eps=0.3;clean=1;pgd=1;held=0");
        assert_eq!(b.to_string().parse(), Ok(b));
        for bad in [
            "",
            "clean=1;held=0",
            "eps=0.3;clean=1",
            "eps=0.3;clean=1;held=0;held=1",
            "eps=0.3;clean=1;cw=2;held=0",
            "eps=0.3;clean=-1;held=0",
            "eps=-0.3;clean=1;held=0",
            "eps=0.3;clean=1;held",
        ] {
            assert_eq!(bad.parse::<Breakdown>(), Err(()), "{bad:?}");
        }
    }
}
