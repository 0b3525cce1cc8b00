//! A run's options: the command line, else `[tool.mtest]`, else pytest's configuration, else
//! the defaults; pytest's options mtest refuses or takes over.

use super::*;

/// Options from the command line, else `[tool.mtest]`, else pytest's config, else defaults.
pub(super) fn options(args: &RunArgs, root: &Path, project: &ProjectConfig) -> Result<RunOptions> {
    let c = &project.mtest;
    let tiers = match &args.tier {
        Some(spec) => crate::tiers::parse_tiers(spec)?,
        None => 0b1111,
    };
    let budget_s = match &args.budget {
        Some(spec) => Some(
            clock::parse_duration(spec)
                .map_err(|e| usage(format!("--budget {e}")))?
                .as_secs_f64(),
        ),
        None => None,
    };
    let jobs = jobs(args.jobs.or(c.jobs))?;
    let timeout_s = args
        .timeout
        .or(c.timeout)
        .or(project.pytest_timeout)
        .unwrap_or(30.0);
    clock::checked_secs(timeout_s).map_err(|e| usage(format!("--timeout: {e}")))?;
    let python = find_python(args.python.as_deref(), c.python.as_deref(), root);
    let mut pytest_args = c.pytest_args.clone();
    pytest_args.extend(args.pytest_args.iter().cloned());
    refuse_meta_options(&pytest_args)?;
    let debugger = take_debugger(&mut pytest_args)?;
    let paths = args
        .paths
        .iter()
        .map(|p| test_path(p, root))
        .collect::<Result<Vec<_>>>()?;
    Ok(RunOptions {
        paths,
        tiers,
        budget_s,
        keyword: args.keyword.clone(),
        markexpr: args.markexpr.clone(),
        timeout_s,
        jobs,
        fail_fast: args.fail_fast,
        last_failed: args.last_failed,
        failed_first: args.failed_first,
        max_fail: match args.max_fail {
            Some(0) => return Err(usage("--max-fail must be at least 1".into())),
            n => n,
        },
        python: python.display().to_string(),
        pytest_args,
        // A failing test is debugged at once, not retried first.
        retries: match debugger.is_empty() {
            true => args.retries.or(c.retries).unwrap_or(0),
            false => 0,
        },
        flaky_fails: args.flaky_fails,
        rerun_crashed: c.rerun_crashed.unwrap_or(true),
        reporters: args.reporters.clone(),
        isolation: args
            .isolation
            .or(c.isolation)
            .unwrap_or_else(Isolation::default_for_platform),
        collect_timeout_s: c
            .collect_timeout
            .unwrap_or_else(crate::store::state::collect_timeout),
        gc_freeze: c.gc_freeze.unwrap_or(true),
        session_end_timeout_s: c
            .session_end_timeout
            .unwrap_or_else(crate::store::state::session_end_timeout),
        shard: args.shard,
        repeat: match args.repeat {
            Some(0) => return Err(usage("--repeat must be at least 1".into())),
            n => n.unwrap_or(1),
        },
        new_test_repeats: c.new_test_repeats.unwrap_or(0),
        debugger,
        impact: c.impact.unwrap_or(true),
        changed: args.changed.then(|| crate::store::state::Changed {
            since: args.changed_since.clone(),
            verify: args.verify,
        }),
    })
}

/// `-j`: as given, else one worker a CPU (at most [`MAX_JOBS`]).
fn jobs(given: Option<u32>) -> Result<u32> {
    let jobs = given.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| u32::try_from(n.get()).unwrap_or(MAX_JOBS).min(MAX_JOBS))
            .unwrap_or(1)
    });
    if jobs == 0 || jobs > MAX_JOBS {
        return Err(usage(format!(
            "-j must be between 1 and {MAX_JOBS}, not {jobs}"
        )));
    }
    Ok(jobs)
}

/// pytest's debugger flags (`--pdb`, `--trace`), taken out of the arguments every pytest
/// process gets: only the one test re-run in the foreground gets them. They need a
/// terminal: the debugger reads from it.
pub(super) fn take_debugger(pytest_args: &mut Vec<String>) -> Result<Vec<String>> {
    let is_debugger = |a: &String| a == "--pdb" || a == "--trace";
    let debugger: Vec<String> = pytest_args
        .iter()
        .filter(|a| is_debugger(a))
        .cloned()
        .collect();
    if let Some(flag) = debugger.first() {
        on_a_terminal(flag)?;
        pytest_args.retain(|a| !is_debugger(a));
    }
    Ok(debugger)
}

/// A debugger flag needs mtest's stdin and stdout on a terminal; else one line saying so.
pub(super) fn on_a_terminal(flag: &str) -> Result<()> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        return Ok(());
    }
    Err(usage(format!(
        "pytest's {flag} needs a terminal (mtest runs the test again alone under the debugger, in the foreground); off a terminal, run `pytest {flag}` on the test itself"
    )))
}

/// A test path or node id of the command line (relative to where mtest was started) as
/// pytest in the project root takes it; one that does not exist is a usage error.
pub(super) fn test_path(word: &str, root: &Path) -> Result<String> {
    let (path, rest) = match word.split_once("::") {
        Some((path, rest)) => (path, Some(rest)),
        None => (word, None),
    };
    let absolute =
        std::path::absolute(path).map_err(|e| usage(format!("test path {word}: {e}")))?;
    if !absolute.exists() {
        return Err(usage(format!(
            "test path {path} does not exist (from {word}); give a file, a directory or a node id (path::name)"
        )));
    }
    let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    let relative = absolute.strip_prefix(&root).unwrap_or(&absolute);
    let mut out = if relative.as_os_str().is_empty() {
        ".".to_string()
    } else {
        relative.display().to_string()
    };
    if let Some(rest) = rest {
        out.push_str("::");
        out.push_str(rest);
    }
    Ok(out)
}

/// pytest options that do not run tests, or only print something: turning their output
/// into records would report tests that never ran.
pub(super) const META_OPTIONS: &[&str] = &[
    "--setup-plan",
    "--setup-only",
    "--collect-only",
    "--co",
    "--fixtures",
    "--funcargs",
    "--fixtures-per-test",
    "--markers",
    "--version",
    "-V",
    "-h",
    "--help",
];

pub(super) fn refuse_meta_options(pytest_args: &[String]) -> Result<()> {
    match pytest_args.iter().find(|a| META_OPTIONS.contains(&a.as_str())) {
        Some(option) => Err(usage(format!(
            "pytest's {option} does not run tests, so mtest has nothing to record: run `pytest {option}` itself"
        ))),
        None => Ok(()),
    }
}

pub(super) fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}
