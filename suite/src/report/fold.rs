//! Folding scenario results into requirement verdicts: a requirement passes only from a
//! scenario tagged with it that ran through to its end; a finding fails the requirement it
//! names; one no scenario checked is `skip` with its reason; and the run's state.

use std::collections::BTreeMap;

use super::{
    DialectReport, LackReport, REPORT_FORMAT, Report, RequirementResult, RuleCount, RunState,
    ScenarioResult, Scope, Totals, TypeDebtReport, Unchecked, Verdict,
};

/// Count the requirements by verdict.
fn totals(requirements: &[RequirementResult]) -> Totals {
    let mut totals = Totals::default();
    for r in requirements {
        match r.verdict {
            Verdict::Pass => totals.pass += 1,
            Verdict::PassNonstrict => totals.pass_nonstrict += 1,
            Verdict::Skip => totals.skip += 1,
            Verdict::Fail => totals.fail += 1,
            Verdict::Error => totals.error += 1,
        }
    }
    totals
}

impl Report {
    /// Judge each requirement from the scenarios.
    ///
    /// - `fail` when any finding names it, whichever scenario observed it (`pass-nonstrict` for a
    ///   SHOULD unless `strict`);
    /// - otherwise `error` when a scenario tagged with it errored;
    /// - otherwise `pass` when a scenario tagged with it ran to its end with its checks executed
    ///   ([`ScenarioResult::ran_through`]): a skipped, stopped or aborted scenario never makes
    ///   a requirement pass;
    /// - otherwise `skip`, with the reason of the first scenario that said why.
    ///
    /// The run's [`RunState`] follows: see [`Report::with_scope`] for a narrowed run.
    ///
    /// The report is deterministic whatever order the scenarios finished in: requirements come
    /// in catalogue order, scenarios are sorted by feature and name (a stable sort: scenarios
    /// sharing both, such as the rows of an outline, keep the order they were given in), and
    /// each requirement lists its scenarios once, in that order.
    pub fn build(
        target: String,
        strict: bool,
        duration_ms: f64,
        mut scenarios: Vec<ScenarioResult>,
    ) -> Report {
        scenarios.sort_by(|a, b| (&a.feature, &a.name).cmp(&(&b.feature, &b.name)));
        let mut by_id: BTreeMap<&str, Vec<&ScenarioResult>> = BTreeMap::new();
        for s in &scenarios {
            for r in &s.requirements {
                by_id.entry(r.as_str()).or_default().push(s);
            }
        }
        // A finding counts for the requirement it names, whichever scenario observed it (a leak
        // seen in a sequence scenario is an isolation failure).
        let mut found: BTreeMap<&str, Vec<&ScenarioResult>> = BTreeMap::new();
        for s in &scenarios {
            for f in &s.findings {
                found.entry(f.requirement.as_str()).or_default().push(s);
            }
        }
        let mut requirements = Vec::new();
        for req in goldenpath_spec::catalogue::requirements() {
            let tagged = by_id.get(req.id).cloned().unwrap_or_default();
            let broken = found.get(req.id).cloned().unwrap_or_default();
            if tagged.is_empty() && broken.is_empty() {
                continue;
            }
            let errored = tagged.iter().find(|s| s.verdict == Verdict::Error);
            let checked = tagged.iter().any(|s| s.ran_through);
            let (verdict, reason) = if !broken.is_empty() {
                let should = req.level == goldenpath_spec::catalogue::Level::Should;
                let verdict = if should && !strict {
                    Verdict::PassNonstrict
                } else {
                    Verdict::Fail
                };
                (verdict, None)
            } else if let Some(s) = errored {
                let why = s
                    .steps
                    .iter()
                    .find(|st| st.verdict == Verdict::Error)
                    .and_then(|st| st.message.clone())
                    .unwrap_or_else(|| "the scenario did not finish".to_owned());
                (
                    Verdict::Error,
                    Some(format!("{}:{}: {why}", s.feature, s.name)),
                )
            } else if checked {
                (Verdict::Pass, None)
            } else {
                let reason = tagged
                    .iter()
                    .find_map(|s| s.skip_reason.clone())
                    .or_else(|| {
                        tagged.iter().find(|s| s.verdict == Verdict::Fail).map(|s| {
                            format!(
                                "not reached: every scenario checking it stopped at another failure first ({}:{})",
                                s.feature, s.name
                            )
                        })
                    })
                    .unwrap_or_else(|| "no scenario checking it ran to its end".to_owned());
                (Verdict::Skip, Some(reason))
            };
            // In report order, each once: a scenario can be both tagged with the requirement
            // and find it broken (or find it broken twice), and outline rows share a name.
            let mut names: Vec<String> = Vec::new();
            for s in &scenarios {
                if tagged.iter().chain(&broken).any(|t| std::ptr::eq(*t, s)) {
                    let name = format!("{}:{}", s.feature, s.name);
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
            requirements.push(RequirementResult {
                id: req.id.to_owned(),
                level: req.level.to_string(),
                text: req.text.to_owned(),
                family: req.family.to_owned(),
                verdict,
                reason,
                scenarios: names,
                via: None,
            });
        }
        let mut report = Report {
            format: REPORT_FORMAT.to_owned(),
            spec_version: goldenpath_spec::SPEC_VERSION.to_owned(),
            target,
            strict,
            state: RunState::Conformant,
            complete: true,
            scope: Scope::default(),
            unchecked: Vec::new(),
            agent_runs: 0,
            notes: Vec::new(),
            budgets: None,
            duration_ms,
            totals: Totals::default(),
            requirements,
            scenarios,
            dialect: None,
        };
        report.settle();
        report
    }

    /// The run covered `scope`: a narrowed one is PARTIAL whatever passed.
    pub fn with_scope(mut self, scope: Scope) -> Report {
        self.scope = scope;
        self.settle();
        self
    }

    /// The run was ended by its deadline: whatever its verdicts, it cannot say CONFORMANT (a
    /// scenario did not run), so it says INCOMPLETE then.
    pub fn cut_short(&mut self) {
        if self.state == RunState::Conformant {
            self.state = RunState::Incomplete;
            self.complete = false;
        }
    }

    /// Recount the totals, the unchecked MUSTs, completeness and the run's state from the
    /// requirements' verdicts.
    fn settle(&mut self) {
        self.totals = totals(&self.requirements);
        self.unchecked = self
            .requirements
            .iter()
            .filter(|r| r.level == "MUST" && matches!(r.verdict, Verdict::Skip | Verdict::Error))
            .map(|r| Unchecked {
                id: r.id.clone(),
                verdict: r.verdict,
                reason: r.reason.clone().unwrap_or_default(),
            })
            .collect();
        let every_must_present = goldenpath_spec::catalogue::requirements()
            .iter()
            .filter(|r| r.level == goldenpath_spec::catalogue::Level::Must)
            .all(|m| self.requirements.iter().any(|r| r.id == m.id));
        self.complete = self.unchecked.is_empty() && every_must_present;
        self.state = if self.totals.fail > 0 {
            RunState::NotConformant
        } else if self.totals.error > 0 {
            RunState::Inconclusive
        } else if self.scope.is_partial() {
            RunState::Partial
        } else if !self.complete {
            RunState::Incomplete
        } else {
            RunState::Conformant
        };
    }

    /// Mark the verdicts as reached through `dialect`, unless it is the canonical one: every
    /// requirement it lacks becomes `skip` with the dialect's reason (whatever the scenarios
    /// found: what it lacks cannot be judged through it, and is never a pass), every other
    /// verdict names the dialect in `via`, and the report gets the dialect's migration debt —
    /// the rules fired so far and the capabilities lacked.
    pub fn through_dialect(&mut self, dialect: &crate::Dialect) {
        if dialect.is_canonical() {
            return;
        }
        let lacks = dialect.lacks();
        for r in &mut self.requirements {
            if let Some(lack) = lacks.iter().find(|l| l.requirements.contains(&r.id)) {
                r.verdict = Verdict::Skip;
                r.reason = Some(dialect.lacked_because(&lack.capability, &lack.reason));
            } else if r.verdict != Verdict::Skip {
                r.via = Some(dialect.name().to_owned());
            }
        }
        self.settle();
        let rules: Vec<RuleCount> = dialect
            .rules_fired()
            .into_iter()
            .map(|(rule, count)| RuleCount { rule, count })
            .collect();
        let by_type: Vec<TypeDebtReport> = dialect
            .frame_debt()
            .into_iter()
            .map(|d| TypeDebtReport {
                kind: d.kind,
                frames: d.frames,
                native: d.native,
                rules: d
                    .rules
                    .into_iter()
                    .map(|(rule, count)| RuleCount { rule, count })
                    .collect(),
            })
            .collect();
        let received = by_type.iter().filter(|t| !t.kind.starts_with("sent "));
        let (frames, native) = received.fold((0, 0), |(f, n), t| (f + t.frames, n + t.native));
        self.dialect = Some(DialectReport {
            name: dialect.name().to_owned(),
            origin: dialect.origin().to_owned(),
            debt: rules.len() + lacks.len(),
            rules,
            lacks: lacks
                .into_iter()
                .map(|l| LackReport {
                    capability: l.capability,
                    requirements: l.requirements,
                    reason: l.reason,
                })
                .collect(),
            frames,
            native,
            by_type,
        });
    }

    /// Whether the run may say CONFORMANT: every MUST ran and passed, over the whole spec.
    pub fn conformant(&self) -> bool {
        self.state == RunState::Conformant
    }

    /// The ids of the requirements with this verdict.
    pub fn ids_with(&self, verdict: Verdict) -> Vec<&str> {
        self.requirements
            .iter()
            .filter(|r| r.verdict == verdict)
            .map(|r| r.id.as_str())
            .collect()
    }
}
