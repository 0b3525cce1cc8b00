//! The executor: the collection (the zygote), the launcher (fork or process), the work
//! handed to the supervision loop and its recorder thread, pytest's session end; `--pdb`
//! and `--trace` in the foreground.

use super::*;

/// What the supervision loop and the recorder leave when the run is over.
pub(super) struct Supervised<'h> {
    pub(super) finish: Finish,
    pub(super) rec: Recorder<'h>,
    /// Each worker's start-up (spawn to first test), for the history.
    pub(super) startups: Vec<Duration>,
    /// (Python, pytest) versions, as the first worker reported them.
    pub(super) versions: Option<(String, String)>,
}

/// Runs the supervision loop; records go to the store, the reporters (and the probes of
/// failure bundles) and the console on a thread of their own: a slow reporter or probe
/// never delays a watchdog or the budget check.
pub(super) fn supervise_and_record<'h>(
    rec: Recorder<'h>,
    ctx: &RunContext,
    queue: Queue,
    launcher: &mut Launcher,
    options: &supervise::Options,
) -> Result<Supervised<'h>> {
    let (finish, recorded) = std::thread::scope(|scope| {
        // One message a loop turn (the events up to its `Tick`): a wake-up of this thread
        // per record cost more than recording it.
        let (tx, rx) = std::sync::mpsc::channel::<Vec<RunEvent>>();
        let recorder = scope.spawn(move || record_turns(rec, rx));
        let mut turn = Vec::new();
        let finish = supervise::run(ctx, queue, launcher, options, &mut |event| {
            let turn_ends = matches!(event, RunEvent::Tick { .. });
            turn.push(event);
            if turn_ends {
                // The recorder ends only when this sender is dropped: a send cannot
                // fail before then. The next turn is likely as big as this one.
                let next = Vec::with_capacity(turn.len());
                let _ = tx.send(std::mem::replace(&mut turn, next));
            }
        });
        let _ = tx.send(turn);
        // No more forks: the zygote ends its session while the recorder catches up.
        if let Launcher::Fork(zygote) = launcher {
            zygote.ask_quit();
        }
        drop(tx);
        (finish, recorder.join())
    });
    match recorded {
        Ok((rec, startups, versions)) => Ok(Supervised {
            finish,
            rec,
            startups,
            versions,
        }),
        Err(_) => Err(Stop(
            Exit::Internal,
            "the recorder thread panicked; .gates/last-run/run.jsonl holds what was recorded"
                .into(),
        )),
    }
}

/// The recorder thread: each loop turn's events, until the loop ends; returns the
/// recorder, the workers' start-ups and the versions the first worker reported.
fn record_turns(
    mut rec: Recorder<'_>,
    rx: std::sync::mpsc::Receiver<Vec<RunEvent>>,
) -> (Recorder<'_>, Vec<Duration>, Option<(String, String)>) {
    let mut startups = Vec::new();
    let mut versions = None;
    let mut records = Vec::new();
    for message in rx.into_iter().flatten() {
        if let RunEvent::Record(r) = message {
            records.push(*r);
            continue;
        }
        // What a turn recorded is stored in one write, before what follows it.
        if !records.is_empty() {
            rec.record(std::mem::take(&mut records));
        }
        match message {
            RunEvent::Record(_) => {}
            RunEvent::Warning(w) => rec.progress.line(&format!("warning: {w}")),
            RunEvent::ChunkEnded {
                chunk,
                startup,
                versions: v,
            } => {
                if let Err(e) = rec.junit.finish(chunk) {
                    rec.progress.line(&format!("warning: {e}"));
                    rec.write_error.get_or_insert(e.to_string());
                }
                startups.extend(startup);
                if versions.is_none() {
                    versions = v;
                }
            }
            RunEvent::Tick {
                running,
                done_estimate_ms,
                ..
            } => {
                rec.reporters.flush_if_due();
                rec.flush_lines();
                rec.tick(running, done_estimate_ms)
            }
        }
    }
    if !records.is_empty() {
        rec.record(records);
    }
    (rec, startups, versions)
}

/// The test to run again under pytest's debugger, and as which attempt.
#[derive(Clone, Copy)]
pub(super) struct DebugTarget {
    pub(super) test: usize,
    pub(super) attempt: u32,
    /// It failed in this run already (`--pdb`): a pass now is flaky.
    pub(super) failed: bool,
}

/// `--pdb`: the run's first failing test (quarantined ones aside); `--trace`: the first
/// selected test. None without a debugger flag, or when the run was interrupted or broken.
pub(super) fn debug_target(
    opts: &RunOptions,
    finish: &Finish,
    new: &[Attempt],
    ctx: &RunContext,
) -> Option<DebugTarget> {
    if opts.debugger.is_empty() || matches!(finish, Finish::Interrupted | Finish::Broken(_)) {
        return None;
    }
    if opts.traces() {
        return (!ctx.tests.is_empty()).then_some(DebugTarget {
            test: 0,
            attempt: 1,
            failed: false,
        });
    }
    let failing = new
        .iter()
        .filter(|a| a.outcome.is_failure())
        .filter_map(|a| ctx.index.get(a.test_id.as_str()).copied())
        .find(|&t| !ctx.tests[t].quarantined)?;
    let id = ctx.tests[failing].id.as_str();
    Some(DebugTarget {
        test: failing,
        attempt: new.iter().filter(|a| a.test_id == id).count() as u32 + 1,
        failed: true,
    })
}

/// Runs a test again alone on the terminal, in the foreground, with pytest's debugger
/// flags, and records it like any other attempt; the run stops there.
pub(super) fn in_the_debugger<'h>(
    mut rec: Recorder<'h>,
    ctx: &mut RunContext,
    target: DebugTarget,
    debugger: &[String],
    gates: &Gates,
) -> Result<Supervised<'h>> {
    let id = &ctx.tests[target.test].id;
    let why = if target.failed {
        "failed"
    } else {
        "is the first selected test"
    };
    rec.progress.line(&format!(
        "mtest: {id} {why}: running it again alone on this terminal, under pytest's {}",
        debugger.join(" ")
    ));
    rec.flush_lines();
    rec.progress.hold();
    if let Some(stop) = ctx.stop_file.take() {
        let _ = std::fs::remove_file(stop);
    }
    ctx.max_fail = None;
    ctx.foreground = Some(debugger.to_vec());
    let mut chunk = Chunk::first(ctx, vec![target.test]);
    chunk.attempt = target.attempt;
    let queue = Queue {
        chunks: vec![chunk],
        uncut: Vec::new(),
        failed_before: if target.failed {
            vec![target.test]
        } else {
            Vec::new()
        },
    };
    let options = supervise::Options {
        jobs: 1,
        max_fail: None,
        first_chunk: next_chunk_id(&gates.chunks()),
        retries: 0,
        rerun_crashed: false,
        deadline: None,
    };
    supervise_and_record(rec, ctx, queue, &mut Launcher::Process, &options)
}

/// --max-fail for the workers: every worker appends each of its failing tests to one file
/// and stops once it holds `n` tests; the failures of quarantined tests (forgiven) do not
/// count. Tests that failed in an earlier invocation of a resumed run count already.
pub(super) fn failure_limit(
    chunks: &Path,
    n: u32,
    tests: &[PlannedTest],
    failed_earlier: &[String],
) -> Result<chunk_run::FailureLimit> {
    let io = |p: &Path, e: std::io::Error| {
        Stop(Exit::Internal, format!("cannot write {}: {e}", p.display()))
    };
    std::fs::create_dir_all(chunks).map_err(|e| io(chunks, e))?;
    // A line each, each ended: the workers append theirs after these.
    let lines =
        |ids: &mut dyn Iterator<Item = &str>| ids.map(|id| format!("{id}\n")).collect::<String>();
    let failing = chunks.join("failing");
    std::fs::write(
        &failing,
        lines(&mut failed_earlier.iter().map(String::as_str)),
    )
    .map_err(|e| io(&failing, e))?;
    let forgiven = chunks.join("forgiven");
    let quarantined = tests.iter().filter(|t| t.quarantined);
    std::fs::write(&forgiven, lines(&mut quarantined.map(|t| t.id.as_str())))
        .map_err(|e| io(&forgiven, e))?;
    Ok(chunk_run::FailureLimit {
        tests: n,
        failing,
        forgiven,
    })
}

/// The collection's initial paths, one a line, for process-mode chunks (any chunk may be
/// one: fork mode falls back to process mode when its zygote dies).
pub(super) fn write_initial_paths(chunks: &Path, paths: &[String]) -> Result<std::path::PathBuf> {
    let file = chunks.join("initpaths");
    let mut text = paths.join("\n");
    text.push('\n');
    std::fs::create_dir_all(chunks)
        .and_then(|()| std::fs::write(&file, text))
        .map_err(|e| {
            Stop(
                Exit::Internal,
                format!("cannot write {}: {e}", file.display()),
            )
        })?;
    Ok(file)
}

/// The run's work. Fork mode: tests that crashed last time first, each alone; the rest
/// the rest cut into chunks as workers ask, files kept together in the order of their first
/// selected test. Process mode: every planned chunk. Then the attempts a resumed run
/// owes (told apart by id: `launcher_for` may have dropped tests not collected any more).
pub(super) fn queue_for(
    ctx: &RunContext,
    fork: bool,
    jobs: u32,
    costs: &chunks::Costs,
    owed: &FastMap<String, u32>,
) -> Queue {
    let tests = ctx.tests;
    let (owed_tests, order): (Vec<usize>, Vec<usize>) =
        (0..tests.len()).partition(|&i| owed.contains_key(&tests[i].id));
    let mut queue = if fork {
        let (alone, rest): (Vec<usize>, Vec<usize>) =
            order.iter().partition(|&&i| tests[i].isolate);
        Queue {
            chunks: alone
                .into_iter()
                .map(|i| Chunk::first(ctx, vec![i]))
                .collect(),
            uncut: chunks::by_file(tests, &rest),
            failed_before: Vec::new(),
        }
    } else {
        Queue {
            chunks: chunks::plan(tests, &order, jobs, costs)
                .into_iter()
                .map(|tests| Chunk::first(ctx, tests))
                .collect(),
            uncut: Vec::new(),
            failed_before: Vec::new(),
        }
    };
    for i in owed_tests {
        let mut chunk = Chunk::first(ctx, vec![i]);
        chunk.attempt = owed[&tests[i].id];
        queue.chunks.push(chunk);
    }
    queue
}

/// pytest's own session end in the zygote, asked for when the last worker ended: plugins
/// finish (pytest-cov combines the workers' coverage data there, as under xdist); in
/// process mode, the chunks' coverage data combined.
pub(super) fn end_executor(
    launcher: &mut Launcher,
    pytest: &Pytest,
    gates: &Gates,
    rec: &mut Recorder,
    limit_s: f64,
) {
    if let Launcher::Fork(zygote) = launcher {
        let limit = clock::secs(limit_s);
        let how = zygote.quit(limit, || {
            rec.progress.line(&format!(
                "waiting for pytest's session end (its sessionfinish hooks and exit handlers; killed after {}, session-end-timeout)",
                clock::human(limit)
            ))
        });
        for notice in zygote.notices.drain(..) {
            rec.progress.line(&format!("warning: {notice}"));
        }
        if how.starts_with("killed") {
            rec.progress
                .line(&format!("warning: the zygote's session end was {how}"));
        }
        if let Some(report) = coverage_report(&zygote.log) {
            eprintln!("{report}");
        }
    }
    if matches!(launcher, Launcher::Process) && pytest.coverage {
        match crate::pytest::combine_coverage(pytest, &gates.chunks()) {
            Ok(report) => eprintln!("{report}"),
            Err(e) => rec.progress.line(&format!("warning: coverage: {e}")),
        }
    }
}

/// Collects with the zygote (into `.gates/collect/`); in fork mode the zygote stays, ready
/// to fork.
/// Starts collection; `skip`: test files left out (`--ignore`), as `--changed` asks.
pub(super) fn start_collection(
    gates: &Gates,
    root: &Path,
    opts: &RunOptions,
    skip: &[String],
    later: Option<std::sync::mpsc::Receiver<Vec<String>>>,
) -> Result<Collection> {
    let mut pytest = Pytest::new(
        opts.python.clone().into(),
        root.to_path_buf(),
        opts.pytest_args.clone(),
    )?;
    pytest.impact = opts.impact;
    let mut selection_args = vec![format!("--timeout={}", opts.timeout_s)];
    if let Some(k) = &opts.keyword {
        selection_args.extend(["-k".to_string(), k.clone()]);
    }
    if let Some(m) = &opts.markexpr {
        selection_args.extend(["-m".to_string(), m.clone()]);
    }
    selection_args.extend(opts.paths.iter().cloned());
    selection_args.extend(skip.iter().map(|f| format!("--ignore={f}")));
    let work = gates.dir.join("collect");
    std::fs::create_dir_all(&work).map_err(|e| {
        Stop(
            Exit::Internal,
            format!("cannot create {}: {e}", work.display()),
        )
    })?;
    let mode = match opts.isolation {
        Isolation::Fork => Mode::Fork,
        Isolation::Process => Mode::Collect,
    };
    let limits = CollectLimits {
        quiet: clock::secs(opts.collect_timeout_s),
        session_end: clock::secs(opts.session_end_timeout_s),
    };
    // The zygote must outlive this function in fork mode: it is the run's pytest. It is
    // spawned on this thread, which lives as long as the run (PDEATHSIG).
    match collect::collect(&pytest, &selection_args, &work, mode, &limits, later) {
        Ok(c) => Ok(c),
        Err(CollectFailure::Broken(text)) => Err(Stop(Exit::PytestBroken, text)),
        Err(CollectFailure::Io(e)) => Err(e.into()),
        Err(CollectFailure::Refused(text)) => Err(usage(text)),
        Err(CollectFailure::Interrupted) => Err(Stop(
            Exit::Interrupted,
            "interrupted while collecting; nothing ran".into(),
        )),
        Err(CollectFailure::Cancelled) => Err(Stop(
            Exit::Internal,
            "collection was cancelled: the files to leave out of it never came".into(),
        )),
    }
}

/// Fork mode's launcher, with each test's index among the zygote's items; a selected
/// test the zygote did not collect (it changed since the run began) gets an `error`
/// record. Without a zygote: process mode.
pub(super) fn launcher_for(
    opts: &RunOptions,
    collection: Option<Collection>,
    tests: &mut Vec<PlannedTest>,
    run_id: &str,
    records: &mut Vec<TestRecord>,
) -> (Launcher, Vec<u32>) {
    let Some(mut collection) = collection else {
        return (Launcher::Process, Vec::new());
    };
    for warning in collection.warnings.drain(..) {
        eprintln!("warning: {warning}");
    }
    if let Some(why) = &collection.no_fork {
        eprintln!(
            "mtest: process mode: the zygote cannot fork safely ({why}); pass --isolation process to say so"
        );
    }
    let Some(zygote) = collection.zygote.take() else {
        return (Launcher::Process, Vec::new());
    };
    debug_assert_eq!(opts.isolation, Isolation::Fork);
    let index: FastMap<&str, u32> = collection
        .collected
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| (item.id.as_str(), i as u32))
        .collect();
    let mut kept = Vec::with_capacity(tests.len());
    let mut item_index = Vec::with_capacity(tests.len());
    for t in tests.drain(..) {
        match index.get(t.id.as_str()) {
            Some(&i) => {
                item_index.push(i);
                kept.push(t);
            }
            None => {
                let mut r = collection_error_record(
                    run_id,
                    &collection.collected,
                    &t.id,
                    "this test was selected when the run began but is not collected any more",
                );
                r.message = Some("selected but not collected any more (did it change?)".into());
                r.file = t.file.clone();
                records.push(r);
            }
        }
    }
    *tests = kept;
    (Launcher::Fork(Box::new(zygote)), item_index)
}

/// pytest-cov's report from the zygote's output (its session end prints it there).
pub(super) fn coverage_report(log: &Path) -> Option<String> {
    let text = collect::tail_of(log, 400);
    let start = text
        .lines()
        .position(|l| l.contains("coverage:") && l.starts_with(['-', '=', '_']))?;
    let lines: Vec<&str> = text
        .lines()
        .skip(start)
        .take_while(|l| !(l.starts_with('=') && (l.contains(" in ") || l.contains("no tests ran"))))
        .collect();
    Some(lines.join("\n").trim_end().to_string())
}
