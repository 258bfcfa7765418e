//! `goldenpath diff OLD.json NEW.json` (and `check --baseline`): how every requirement moved
//! between two reports, and how the dialect's migration debt moved.
//!
//! Each requirement present in either report gets one [`Change`]: its verdict before and after
//! (absent: `None`) and the [`Transition`] they make. A transition is a **regression** when the
//! newer report lost something: a requirement that now fails or errs and did not
//! (`pass → fail`, `skip → fail`, a new requirement that fails), one that passed and now is
//! skipped (`pass → skip`: losing a check is a regression), and a SHOULD that was kept and now
//! is missed (`pass → pass-nonstrict`). A failure that is now skipped (`fail → skip`) is shown
//! as no longer judged, neither fixed nor a regression; a requirement gone from the newer
//! report (a narrower selection) is shown, not counted as a regression.
//!
//! ```
//! use goldenpath::Report;
//! use goldenpath::writer::{Transition, diff};
//!
//! let report = |verdict: &str| -> Report {
//!     serde_json::from_value(serde_json::json!({
//!         "format": "goldenpath-report/1", "spec_version": "1", "target": "t",
//!         "strict": false, "duration_ms": 1.0,
//!         "totals": {"pass": 0, "pass_nonstrict": 0, "skip": 0, "fail": 0, "error": 0},
//!         "requirements": [{"id": "GP-SEQ-001", "level": "MUST", "text": "t",
//!                           "family": "SEQ", "verdict": verdict, "scenarios": []}],
//!         "scenarios": []
//!     }))
//!     .unwrap()
//! };
//! let d = diff(&report("pass"), &report("skip"));
//! assert_eq!(d.change("GP-SEQ-001").unwrap().transition, Transition::Lost);
//! assert!(d.regressed());
//! assert!(!diff(&report("skip"), &report("pass")).regressed());
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::report::{DialectReport, Report, Verdict};

/// How one requirement moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Transition {
    /// Now failing (or in error), not before: `pass → fail`, `skip → fail`, new and failing.
    /// A regression.
    NewFailure,
    /// Passing before, skipped now (`pass → skip`): a check was lost. A regression.
    Lost,
    /// A SHOULD kept before, missed now (`pass → pass-nonstrict`). A regression.
    ShouldMissed,
    /// Failing before, passing now (`fail → pass`, `error → pass-nonstrict`...).
    Fixed,
    /// Skipped before, judged and not failing now (`skip → pass`).
    Gained,
    /// A SHOULD missed before, kept now (`pass-nonstrict → pass`).
    ShouldKept,
    /// Failing (or in error) before and now.
    StillFailing,
    /// Failing before, skipped now (`fail → skip`): not fixed, not judged. Shown, not a
    /// regression (no pass was lost), but no fix either.
    FailureUnjudged,
    /// Not in the older report, and not failing now.
    New,
    /// In the older report, not in the newer one (a narrower selection, or a renamed id).
    Gone,
    /// The same verdict.
    Unchanged,
}

impl Transition {
    /// Whether the newer report lost something (see the [module documentation](self)).
    pub fn is_regression(self) -> bool {
        matches!(
            self,
            Transition::NewFailure | Transition::Lost | Transition::ShouldMissed
        )
    }

    /// A few words for people, e.g. `new failure`.
    pub fn label(self) -> &'static str {
        match self {
            Transition::NewFailure => "new failure",
            Transition::Lost => "lost (no longer checked)",
            Transition::ShouldMissed => "SHOULD newly missed",
            Transition::Fixed => "fixed",
            Transition::Gained => "gained (now checked)",
            Transition::ShouldKept => "SHOULD now kept",
            Transition::StillFailing => "still failing",
            Transition::FailureUnjudged => "failure no longer judged",
            Transition::New => "new",
            Transition::Gone => "gone (not in the newer report)",
            Transition::Unchanged => "unchanged",
        }
    }

    /// The transition from `old` to `new` (absent: `None`).
    pub fn of(old: Option<Verdict>, new: Option<Verdict>) -> Transition {
        let failing = |v: Verdict| matches!(v, Verdict::Fail | Verdict::Error);
        match (old, new) {
            (None, None) => Transition::Unchanged,
            (Some(_), None) => Transition::Gone,
            (None, Some(n)) if failing(n) => Transition::NewFailure,
            (None, Some(_)) => Transition::New,
            (Some(o), Some(n)) => match (failing(o), failing(n)) {
                (true, true) => Transition::StillFailing,
                (false, true) => Transition::NewFailure,
                _ if o == n => Transition::Unchanged,
                (true, false) if n == Verdict::Skip => Transition::FailureUnjudged,
                (false, false) if n == Verdict::Skip => Transition::Lost,
                (true, false) => Transition::Fixed,
                (false, false) => match (o, n) {
                    (Verdict::Skip, _) => Transition::Gained,
                    (Verdict::Pass, Verdict::PassNonstrict) => Transition::ShouldMissed,
                    _ => Transition::ShouldKept,
                },
            },
        }
    }
}

/// One requirement in the two reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The requirement id.
    pub id: String,
    /// Its verdict in the older report, if it was there.
    pub old: Option<Verdict>,
    /// Its verdict in the newer report, if it is there.
    pub new: Option<Verdict>,
    /// How it moved.
    pub transition: Transition,
}

/// How one dialect rule's count moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDelta {
    /// The rule.
    pub rule: String,
    /// How often it fired in the older report (0: not at all).
    pub old: u64,
    /// How often it fired in the newer report (0: not at all, paid off).
    pub new: u64,
}

/// How the migration debt moved (either report may have been canonical: no dialect, no debt).
#[derive(Debug, Clone, PartialEq)]
pub struct DebtDelta {
    /// The older report's dialect, if any.
    pub old_dialect: Option<String>,
    /// The newer report's dialect, if any.
    pub new_dialect: Option<String>,
    /// The debt before (0 without a dialect).
    pub old_debt: usize,
    /// The debt after.
    pub new_debt: usize,
    /// The share of received frames that were native before, in percent (100 without a
    /// dialect; `None`: not measured).
    pub old_native: Option<f64>,
    /// The same after.
    pub new_native: Option<f64>,
    /// Every rule whose count changed, by rule.
    pub rules: Vec<RuleDelta>,
    /// Capabilities lacked after and not before.
    pub lacks_added: Vec<String>,
    /// Capabilities lacked before and not after.
    pub lacks_removed: Vec<String>,
}

/// Two reports compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Diff {
    /// The older report's target.
    pub old_target: String,
    /// The newer report's target.
    pub new_target: String,
    /// Every requirement of either report, in the newer report's order, then those gone.
    pub changes: Vec<Change>,
    /// The debt's move.
    pub debt: DebtDelta,
}

/// Compare `old` with `new`.
pub fn diff(old: &Report, new: &Report) -> Diff {
    let before: BTreeMap<&str, Verdict> = old
        .requirements
        .iter()
        .map(|r| (r.id.as_str(), r.verdict))
        .collect();
    let mut changes: Vec<Change> = new
        .requirements
        .iter()
        .map(|r| {
            let o = before.get(r.id.as_str()).copied();
            Change {
                id: r.id.clone(),
                old: o,
                new: Some(r.verdict),
                transition: Transition::of(o, Some(r.verdict)),
            }
        })
        .collect();
    for r in &old.requirements {
        if !new.requirements.iter().any(|n| n.id == r.id) {
            changes.push(Change {
                id: r.id.clone(),
                old: Some(r.verdict),
                new: None,
                transition: Transition::Gone,
            });
        }
    }
    Diff {
        old_target: old.target.clone(),
        new_target: new.target.clone(),
        changes,
        debt: debt_delta(old.dialect.as_ref(), new.dialect.as_ref()),
    }
}

fn debt_delta(old: Option<&DialectReport>, new: Option<&DialectReport>) -> DebtDelta {
    let counts = |d: Option<&DialectReport>| -> BTreeMap<String, u64> {
        d.map(|d| d.rules.iter().map(|r| (r.rule.clone(), r.count)).collect())
            .unwrap_or_default()
    };
    let (a, b) = (counts(old), counts(new));
    let mut rules: Vec<RuleDelta> = a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|rule| RuleDelta {
            rule: rule.clone(),
            old: a.get(rule).copied().unwrap_or(0),
            new: b.get(rule).copied().unwrap_or(0),
        })
        .filter(|r| r.old != r.new)
        .collect();
    rules.sort_by(|x, y| {
        (x.new == 0)
            .cmp(&(y.new == 0))
            .reverse()
            .then(x.rule.cmp(&y.rule))
    });
    let lacks = |d: Option<&DialectReport>| -> Vec<String> {
        d.map(|d| d.lacks.iter().map(|l| l.capability.clone()).collect())
            .unwrap_or_default()
    };
    let (la, lb) = (lacks(old), lacks(new));
    // Canonical: every frame is native. A report from before the count: not measured.
    let native = |d: Option<&DialectReport>| match d {
        None => Some(100.0),
        Some(d) if d.frames > 0 => Some(d.native_percent()),
        Some(_) => None,
    };
    DebtDelta {
        old_dialect: old.map(|d| d.name.clone()),
        new_dialect: new.map(|d| d.name.clone()),
        old_debt: old.map_or(0, |d| d.debt),
        new_debt: new.map_or(0, |d| d.debt),
        old_native: native(old),
        new_native: native(new),
        rules,
        lacks_added: lb.iter().filter(|l| !la.contains(l)).cloned().collect(),
        lacks_removed: la.iter().filter(|l| !lb.contains(l)).cloned().collect(),
    }
}

impl Diff {
    /// Whether any requirement regressed (the exit code 1 of `diff` and `--baseline`).
    pub fn regressed(&self) -> bool {
        self.changes.iter().any(|c| c.transition.is_regression())
    }

    /// The change of requirement `id`.
    pub fn change(&self, id: &str) -> Option<&Change> {
        self.changes.iter().find(|c| c.id == id)
    }

    /// How many requirements made each transition, unchanged ones left out.
    fn counts(&self) -> BTreeMap<Transition, usize> {
        let mut counts = BTreeMap::new();
        for c in self
            .changes
            .iter()
            .filter(|c| c.transition != Transition::Unchanged)
        {
            *counts.entry(c.transition).or_insert(0) += 1;
        }
        counts
    }

    /// The one-line verdict of the comparison.
    fn headline(&self) -> String {
        let moved: Vec<String> = self
            .counts()
            .iter()
            .map(|(t, n)| format!("{n} {}", t.label()))
            .collect();
        let verdict = if self.regressed() {
            "REGRESSED"
        } else {
            "NO REGRESSION"
        };
        if moved.is_empty() {
            format!("{verdict}: every requirement has the same verdict")
        } else {
            format!("{verdict}: {}", moved.join(", "))
        }
    }

    /// The comparison for a terminal: the requirements that moved, then the debt.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "goldenpath diff: {} → {}",
            self.old_target, self.new_target
        );
        for c in self.moved() {
            let _ = writeln!(
                out,
                "  {:<14} {:<15} → {:<15} {}{}",
                c.id,
                verdict(c.old),
                verdict(c.new),
                c.transition.label(),
                if c.transition.is_regression() {
                    "  (regression)"
                } else {
                    ""
                }
            );
        }
        let d = &self.debt;
        if d.old_dialect.is_some() || d.new_dialect.is_some() {
            let _ = writeln!(out, "{}", self.debt_line());
            for r in &d.rules {
                let _ = writeln!(out, "    {:>6} → {:<6} {}", r.old, r.new, r.rule);
            }
            for l in &d.lacks_removed {
                let _ = writeln!(out, "    lacks {l}: no longer");
            }
            for l in &d.lacks_added {
                let _ = writeln!(out, "    lacks {l}: new");
            }
        }
        let _ = writeln!(out, "{}", self.headline());
        out
    }

    /// The comparison as Markdown, for a pull request comment.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let mark = if self.regressed() { "❌" } else { "✅" };
        let _ = writeln!(out, "### goldenpath diff {mark} {}\n", self.headline());
        let _ = writeln!(
            out,
            "`{}` → `{}`\n",
            self.old_target.replace('`', "'"),
            self.new_target.replace('`', "'")
        );
        let moved: Vec<&Change> = self.moved().collect();
        if !moved.is_empty() {
            let _ = writeln!(out, "| requirement | before | after | |");
            let _ = writeln!(out, "|---|---|---|---|");
            for c in moved {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {}{} |",
                    c.id,
                    verdict(c.old),
                    verdict(c.new),
                    if c.transition.is_regression() {
                        "**regression**: "
                    } else {
                        ""
                    },
                    c.transition.label()
                );
            }
            let _ = writeln!(out);
        }
        let d = &self.debt;
        if d.old_dialect.is_some() || d.new_dialect.is_some() {
            let _ = writeln!(out, "**{}**\n", self.debt_line().trim());
            if !d.rules.is_empty() || !d.lacks_added.is_empty() || !d.lacks_removed.is_empty() {
                let _ = writeln!(out, "| rule | before | after |");
                let _ = writeln!(out, "|---|---|---|");
                for r in &d.rules {
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} |",
                        r.rule.replace('|', "\\|"),
                        r.old,
                        r.new
                    );
                }
                for l in &d.lacks_removed {
                    let _ = writeln!(out, "| lacks `{l}` | yes | no |");
                }
                for l in &d.lacks_added {
                    let _ = writeln!(out, "| lacks `{l}` | no | yes |");
                }
                let _ = writeln!(out);
            }
        }
        out
    }

    /// The requirements that moved.
    fn moved(&self) -> impl Iterator<Item = &Change> {
        self.changes
            .iter()
            .filter(|c| c.transition != Transition::Unchanged)
    }

    /// `migration debt: 38 → 35 (-3); native frames 0.0 % → 12.5 %`.
    fn debt_line(&self) -> String {
        let d = &self.debt;
        let name = |n: &Option<String>| n.clone().unwrap_or_else(|| "canonical".into());
        let via = if d.old_dialect == d.new_dialect {
            name(&d.new_dialect)
        } else {
            format!("{} → {}", name(&d.old_dialect), name(&d.new_dialect))
        };
        let delta = d.new_debt as i64 - d.old_debt as i64;
        let native = |p: Option<f64>| p.map_or("n/a".to_owned(), |p| format!("{p:.1} %"));
        format!(
            "  migration debt via {via}: {} → {} ({delta:+}); native frames {} → {}",
            d.old_debt,
            d.new_debt,
            native(d.old_native),
            native(d.new_native)
        )
    }
}

fn verdict(v: Option<Verdict>) -> &'static str {
    v.map_or("(absent)", Verdict::as_str)
}
