//! The executor: cucumber-rs over the embedded features, with the evidence each scenario
//! leaves collected into the one result model. It never prints.

use cucumber::event::{
    self, Cucumber as CucumberEvent, Feature as FeatureEvent, Rule as RuleEvent,
    Scenario as ScenarioEvent, Step as StepEvent,
};
use cucumber::feature::Ext as _;
use cucumber::tag::Ext as _;
use cucumber::{Event, World as _, cli, parser};
use futures_util::FutureExt as _;
use futures_util::stream;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::report::{Finding, ScenarioResult, StepResult, Verdict};
use crate::world::{Context, GoldenWorld, ScenarioOutcome};

/// The embedded feature files as a cucumber parser.
pub(crate) struct Embedded;

impl parser::Parser<()> for Embedded {
    type Cli = cli::Empty;
    type Output = stream::Iter<std::vec::IntoIter<parser::Result<gherkin::Feature>>>;

    fn parse(self, _: (), _: cli::Empty) -> Self::Output {
        stream::iter(features().into_iter().map(Ok).collect::<Vec<_>>())
    }
}

/// Every embedded feature, parsed, its outlines expanded. The files are tested at build time,
/// so a parse failure here is a bug of this crate.
pub(crate) fn features() -> Vec<gherkin::Feature> {
    goldenpath_spec::catalogue::FEATURE_FILES
        .iter()
        .map(|(name, text)| {
            let mut feature = gherkin::Feature::parse(text, gherkin::GherkinEnv::default())
                .unwrap_or_else(|e| panic!("embedded feature {name} does not parse: {e}"));
            feature.path = Some(name.into());
            feature
                .expand_examples()
                .unwrap_or_else(|e| panic!("embedded feature {name}: {e}"))
        })
        .collect()
}

/// The family of a feature: its file name without `.feature`.
pub(crate) fn family(feature: &gherkin::Feature) -> String {
    feature
        .path
        .as_ref()
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| feature.name.clone())
}

/// The name a scenario shows under: its own, and for a row of a Scenario Outline the row's
/// values after it, `Name [frame=null, code=not_an_object]`, so that no two rows of one outline
/// share a name in `--list`, the reports and JUnit. (Cucumber substitutes `<placeholders>` of
/// an outline's name already; the suffix names the row whether or not the name used them.)
pub(crate) fn scenario_name(scenario: &gherkin::Scenario) -> String {
    // An expanded row keeps one `Examples` whose table is its header and its row.
    let row = scenario
        .examples
        .first()
        .and_then(|e| e.table.as_ref())
        .and_then(|t| Some((t.rows.first()?, t.rows.get(1)?)));
    match row {
        Some((header, values)) if !header.is_empty() => {
            let values: Vec<String> = header
                .iter()
                .zip(values)
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("{} [{}]", scenario.name, values.join(", "))
        }
        _ => scenario.name.clone(),
    }
}

/// The requirement ids among tags.
pub(crate) fn requirement_tags(tags: &[String]) -> Vec<String> {
    tags.iter()
        .filter(|t| t.starts_with("GP-"))
        .cloned()
        .collect()
}

/// Which scenarios to run.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// A cucumber tag expression, e.g. `@isolation and not @directives`.
    pub tags: Option<gherkin::tagexpr::TagOperation>,
    /// The tag expression as the user wrote it, for the report.
    pub tags_text: Option<String>,
    /// Requirement id prefixes, e.g. `GP-SEQ`; a scenario runs when one of its ids starts with
    /// one of them.
    pub only: Vec<String>,
}

impl Selection {
    /// Whether the scenario is selected.
    pub fn matches(&self, feature: &gherkin::Feature, scenario: &gherkin::Scenario) -> bool {
        let tags: Vec<&String> = feature.tags.iter().chain(&scenario.tags).collect();
        if let Some(op) = &self.tags
            && !op.eval(tags.iter().copied())
        {
            return false;
        }
        self.only.is_empty()
            || tags.iter().any(|t| {
                t.starts_with("GP-") && self.only.iter().any(|p| t.starts_with(p.as_str()))
            })
    }
}

type Key = (String, String, usize);

fn key(feature: &gherkin::Feature, scenario: &gherkin::Scenario) -> Key {
    (
        family(feature),
        scenario.name.clone(),
        scenario.position.line,
    )
}

#[derive(Default)]
struct Partial {
    feature: String,
    name: String,
    tags: Vec<String>,
    started: Option<Instant>,
    duration_ms: f64,
    steps: Vec<StepResult>,
    finished: bool,
}

/// A cucumber writer that keeps step outcomes per scenario.
pub(crate) struct Collector {
    partial: HashMap<Key, Partial>,
    outcomes: Arc<Mutex<HashMap<Key, ScenarioOutcome>>>,
    progress: Option<Progress>,
    /// Finished scenarios, with their key (whose line orders the rows of an outline): shared,
    /// so that a run cut short by its deadline keeps what finished.
    done: Arc<Mutex<Vec<(Key, ScenarioResult)>>>,
}

/// Called with each scenario's result as it finishes.
pub type Progress = Arc<dyn Fn(&ScenarioResult) + Send + Sync>;

impl cucumber::writer::Normalized for Collector {}

/// A failed step's message, secrets redacted.
fn panic_text(info: &event::Info) -> String {
    let text = if let Some(s) = info.downcast_ref::<String>() {
        s.as_str()
    } else if let Some(s) = info.downcast_ref::<&str>() {
        s
    } else {
        "the step panicked"
    };
    crate::tokens::redact(text)
}

impl Collector {
    fn step(&mut self, k: Key, step: &gherkin::Step, ev: &StepEvent<GoldenWorld>) {
        let partial = self.partial.entry(k).or_default();
        let (verdict, message) = match ev {
            StepEvent::Started => return,
            StepEvent::Passed(..) => (Verdict::Pass, None),
            StepEvent::Skipped => (
                Verdict::Error,
                Some("no step definition matches this step".to_owned()),
            ),
            StepEvent::Failed(_, _, _, err) => {
                let text = match err {
                    event::StepError::Panic(info) => panic_text(info),
                    other => other.to_string(),
                };
                // The verdict travels in the world's typed findings; the message is for people.
                // A step that failed without recording one is the suite's bug, not the target's.
                if text.starts_with(crate::world::FINDING_PREFIX) {
                    (Verdict::Fail, Some(text))
                } else if text.starts_with(crate::world::ERROR_PREFIX) {
                    (Verdict::Error, Some(text))
                } else {
                    (
                        Verdict::Error,
                        Some(format!(
                            "{} the step failed without naming a requirement (a bug of the suite): {text}",
                            crate::world::ERROR_PREFIX
                        )),
                    )
                }
            }
        };
        partial.steps.push(StepResult {
            keyword: step.keyword.clone(),
            text: step.value.clone(),
            verdict,
            message,
        });
    }

    fn finish(&mut self, k: Key) -> Option<ScenarioResult> {
        let partial = self.partial.remove(&k)?;
        let outcome = self
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&k)
            .unwrap_or_default();
        Some(assemble(partial, outcome))
    }
}

/// Turn a scenario's step outcomes and its world's evidence into its result. The findings are
/// the typed ones the steps and the on-arrival checks recorded: nothing is read back out of a
/// step's message.
fn assemble(p: Partial, outcome: ScenarioOutcome) -> ScenarioResult {
    let requirements = requirement_tags(&p.tags);
    let findings: Vec<Finding> = outcome.findings;
    let step_error = p.steps.iter().any(|s| s.verdict == Verdict::Error);
    // Its checks all executed: every step ran and passed, nothing skipped or stopped the
    // scenario. Only then does it count for the requirements it is tagged with.
    let ran_through = p.finished
        && outcome.skip_reason.is_none()
        && !p.steps.is_empty()
        && p.steps.iter().all(|s| s.verdict == Verdict::Pass);
    let verdict = if !findings.is_empty() {
        Verdict::Fail
    } else if step_error || !p.finished {
        Verdict::Error
    } else if outcome.skip_reason.is_some() {
        Verdict::Skip
    } else {
        Verdict::Pass
    };
    let keep_evidence = matches!(verdict, Verdict::Fail | Verdict::Error);
    ScenarioResult {
        feature: p.feature,
        name: p.name,
        requirements,
        tags: p.tags,
        verdict,
        skip_reason: outcome.skip_reason,
        ran_through,
        duration_ms: p.duration_ms,
        steps: p.steps,
        findings,
        transcripts: if keep_evidence {
            outcome.transcripts
        } else {
            Vec::new()
        },
        leak_matrix: outcome.leak_matrix,
    }
}

impl cucumber::Writer<GoldenWorld> for Collector {
    type Cli = cli::Empty;

    async fn handle_event(
        &mut self,
        event: parser::Result<Event<CucumberEvent<GoldenWorld>>>,
        _: &cli::Empty,
    ) {
        let Ok(event) = event else { return };
        let CucumberEvent::Feature(feature, ev) = event.value else {
            return;
        };
        let (scenario, ev) = match ev {
            FeatureEvent::Scenario(s, ev) => (s, ev.event),
            FeatureEvent::Rule(_, RuleEvent::Scenario(s, ev)) => (s, ev.event),
            _ => return,
        };
        let k = key(&feature, &scenario);
        match ev {
            ScenarioEvent::Started => {
                let tags = feature.tags.iter().chain(&scenario.tags).cloned().collect();
                self.partial.insert(
                    k,
                    Partial {
                        feature: family(&feature),
                        name: scenario_name(&scenario),
                        tags,
                        started: Some(Instant::now()),
                        ..Partial::default()
                    },
                );
            }
            ScenarioEvent::Background(step, ev) | ScenarioEvent::Step(step, ev) => {
                self.step(k, &step, &ev)
            }
            ScenarioEvent::Hook(_, event::Hook::Failed(_, info)) => {
                let partial = self.partial.entry(k).or_default();
                partial.steps.push(StepResult {
                    keyword: "Hook".into(),
                    text: "scenario set-up or tear-down".into(),
                    verdict: Verdict::Error,
                    message: Some(panic_text(&info)),
                });
            }
            ScenarioEvent::Finished => {
                if let Some(p) = self.partial.get_mut(&k) {
                    p.duration_ms = p
                        .started
                        .map(|s| s.elapsed().as_secs_f64() * 1000.0)
                        .unwrap_or(0.0);
                    p.finished = true;
                }
                if let Some(result) = self.finish(k.clone()) {
                    if let Some(progress) = &self.progress {
                        progress(&result);
                    }
                    self.done
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((k, result));
                }
            }
            _ => {}
        }
    }
}

/// Run the selected scenarios against the target of `ctx`; their results, by feature, name and
/// line (whatever order they finished in, so that reports are stable run to run). At
/// `deadline` the scenarios still running or waiting are ended (their connections dropped) and
/// reported as skipped, "run deadline reached"; the second value says whether that happened.
pub(crate) async fn execute(
    ctx: Arc<Context>,
    selection: Selection,
    progress: Option<Progress>,
    deadline: Option<(tokio::time::Instant, std::time::Duration)>,
) -> (Vec<ScenarioResult>, bool) {
    let outcomes: Arc<Mutex<HashMap<Key, ScenarioOutcome>>> = Arc::default();
    let done: Arc<Mutex<Vec<(Key, ScenarioResult)>>> = Arc::default();
    let collector = Collector {
        partial: HashMap::new(),
        outcomes: outcomes.clone(),
        progress,
        done: done.clone(),
    };
    let selected = selection.clone();
    let concurrency = ctx.concurrency;
    let record = ctx.record.clone();
    let run = GoldenWorld::cucumber::<&str>()
        .with_parser(Embedded)
        .with_writer(collector)
        .with_cli(cli::Opts::<_, _, _, cli::Empty>::default())
        .max_concurrent_scenarios(concurrency)
        .before(move |feature, _, scenario, world| {
            world.scenario = ctx
                .scenarios
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            // A scenario the dialect cannot judge is skipped before it runs, with the reason.
            let tags: Vec<String> = feature.tags.iter().chain(&scenario.tags).cloned().collect();
            world.skip = ctx.dialect.skips_scenario(&scenario.name, &tags);
            world.requirements = requirement_tags(&tags);
            world.ctx = Some(ctx.clone());
            async {}.boxed_local()
        })
        .after(move |feature, _, scenario, _, world| {
            let outcomes = outcomes.clone();
            let k = key(feature, scenario);
            let record = record.clone();
            async move {
                if let Some(world) = world {
                    let outcome = world.finish().await;
                    if let Some(dir) = &record
                        && let Err(e) = crate::capture::write_scenario(
                            dir,
                            &k.0,
                            &k.1,
                            k.2,
                            &outcome.transcripts,
                        )
                    {
                        tracing::error!("recording {}: {}: {e}", k.0, k.1);
                    }
                    outcomes
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(k, outcome);
                }
            }
            .boxed_local()
        })
        .filter_run((), move |feature, _, scenario| {
            selection.matches(feature, scenario)
        });
    let cut = match deadline {
        Some((at, _)) => {
            let cut = tokio::time::timeout_at(at, run).await.is_err();
            tracing::debug!(
                cut,
                late_ms = at.elapsed().as_millis() as u64,
                "scenarios over"
            );
            cut
        }
        None => {
            run.await;
            false
        }
    };
    tracing::debug!("the scenarios are dropped");
    let mut done = std::mem::take(&mut *done.lock().unwrap_or_else(|p| p.into_inner()));
    if let (true, Some((_, limit))) = (cut, deadline) {
        // Everything selected that did not finish: ended by the deadline, checked by nothing.
        for feature in features() {
            for scenario in feature
                .scenarios
                .iter()
                .chain(feature.rules.iter().flat_map(|r| r.scenarios.iter()))
            {
                let k = key(&feature, scenario);
                if !selected.matches(&feature, scenario) || done.iter().any(|(d, _)| *d == k) {
                    continue;
                }
                let tags: Vec<String> =
                    feature.tags.iter().chain(&scenario.tags).cloned().collect();
                done.push((
                    k,
                    ScenarioResult {
                        feature: family(&feature),
                        name: scenario_name(scenario),
                        requirements: requirement_tags(&tags),
                        tags,
                        verdict: Verdict::Skip,
                        skip_reason: Some(format!(
                            "run deadline reached (--deadline {}): the scenario was ended before its checks",
                            crate::human(limit)
                        )),
                        ran_through: false,
                        duration_ms: 0.0,
                        steps: Vec::new(),
                        findings: Vec::new(),
                        transcripts: Vec::new(),
                        leak_matrix: None,
                    },
                ));
            }
        }
    }
    done.sort_by(|(a, _), (b, _)| a.cmp(b));
    (done.into_iter().map(|(_, result)| result).collect(), cut)
}
