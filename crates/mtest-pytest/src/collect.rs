//! Collection: which tests exist, with their files, lines and markers. The zygote
//! collects (in fork mode it then forks the workers from that very collection), watched
//! like a test: a module that crashes or hangs on import is found and left out.

use crate::FastMap;
use std::io::Read;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::events::{Event, Item};
use super::zygote::{Mode, Zygote};
use super::Pytest;
use crate::platform;
use crate::watchdog::{Seen, Watchdog, Why};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CollectError {
    /// The collector's node id, usually the module path.
    pub id: String,
    pub text: String,
    /// One line for the record, when the text's last line is not it (a crash, a hang).
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Collected {
    pub items: Vec<Item>,
    pub errors: Vec<CollectError>,
    /// The command that collected, for bundles of collection errors.
    pub command: String,
    /// pytest's initial paths in that collection (process-mode chunks are given them).
    pub initial_paths: Option<Vec<String>>,
    /// pytest's cache directory, where the run's end writes `lastfailed`.
    #[serde(default)]
    pub cache_dir: Option<String>,
    /// pytest's own `-x` / `--maxfail N` (from its options or `addopts`): mtest's
    /// `--max-fail` where none is given.
    #[serde(default)]
    pub pytest_maxfail: Option<u32>,
    /// Collectors that skipped themselves (a module's `pytest.importorskip`): (id, reason).
    #[serde(default)]
    pub skipped: Vec<(String, Option<String>)>,
}

/// Why collection produced nothing usable.
#[derive(Debug)]
pub enum CollectFailure {
    /// pytest itself could not run (broken conftest, INTERNALERROR, bad arguments):
    /// pytest's own text.
    Broken(String),
    /// We could not start it at all.
    Io(crate::PytestError),
    /// An option that does not run tests (`--setup-plan`…).
    Refused(String),
    /// Ctrl-C or SIGTERM while collecting.
    Interrupted,
    /// The files to leave out, awaited by the zygote, never came (what was to find them
    /// failed, and says why).
    Cancelled,
}

/// An event line of the collection that mtest cannot read.
fn unreadable(e: crate::events::Unreadable) -> CollectFailure {
    CollectFailure::Broken(format!(
        "{e}: mtest cannot know which tests were collected; please report this line"
    ))
}

/// A finished collection, and in fork mode the zygote that made it, ready to fork.
pub struct Collection {
    pub collected: Collected,
    pub zygote: Option<Zygote>,
    /// Fork mode was asked for but the zygote cannot fork safely: why.
    pub no_fork: Option<String>,
    /// What the console should say about the collection (a session end that was cut).
    pub warnings: Vec<String>,
    /// Per file: seconds its collection took (import and parametrization).
    pub collect_s: FastMap<String, f64>,
}

/// How long collection may go without progress (a collector starting or finishing)
/// before the collector in flight is taken for hung.
pub struct CollectLimits {
    pub quiet: Duration,
    /// Process mode: how long the collecting pytest may take to end once it has reported
    /// every item (`session-end-timeout`): then it is killed and its collection used.
    pub session_end: Duration,
}

/// Collectors started and not finished, innermost last: the culprit of a crash or hang.
#[derive(Default)]
struct Progress {
    open: Vec<(String, String, f64)>,
    collect_s: FastMap<String, f64>,
}

impl Progress {
    fn start(&mut self, id: String, path: String, t: f64) {
        self.open.push((id, path, t));
    }

    /// Collection errors and progress.
    fn apply(&mut self, event: Event, collected: &mut Collected) {
        match event {
            Event::CollectError { id, text } => collected.errors.push(CollectError {
                id,
                text,
                message: None,
            }),
            Event::CollectSkip { id, message } => collected.skipped.push((id, message)),
            Event::CollectStart { id, path, t } => self.start(id, path, t),
            Event::CollectDone { id, t } => self.done(&id, t),
            _ => {}
        }
    }

    fn done(&mut self, id: &str, t: f64) {
        if let Some(i) = self.open.iter().rposition(|(open, _, _)| open == id) {
            let (id, _, started) = self.open.remove(i);
            if id.ends_with(".py") {
                self.collect_s.insert(id, (t - started).max(0.0));
            }
        }
    }
}

/// Collects with a supervised zygote: a module that crashes or hangs on import becomes an
/// `error` for that module (found exactly: the collector in flight), and collection starts
/// again without it. `args` are the selection arguments (`-k`, `-m`, paths).
/// `later`: files to leave out that are known only after the zygote has started (it
/// starts, then waits for them before collecting; see [`Zygote::ignore`]); a sender
/// dropped without a list cancels the collection.
pub fn collect(
    pytest: &Pytest,
    args: &[String],
    work: &Path,
    mode: Mode,
    limits: &CollectLimits,
    mut later: Option<Receiver<Vec<String>>>,
) -> Result<Collection, CollectFailure> {
    let mut culprits: Vec<CollectError> = Vec::new();
    let mut ignored: Vec<String> = Vec::new();
    for attempt in 1..=MAX_CULPRITS + 1 {
        let mut zargs = args.to_vec();
        zargs.extend(ignored.iter().map(|p| format!("--ignore={p}")));
        let mut zygote = Zygote::spawn(pytest, mode, &zargs, work, attempt as u32, later.is_some())
            .map_err(CollectFailure::Io)?;
        if let Some(files) = later.take() {
            let files = files.recv().map_err(|_| CollectFailure::Cancelled)?;
            // A zygote that cannot take them has ended: what it said is read below.
            let _ = zygote.ignore(&files);
            ignored.extend(files);
        }
        let watched = match watch(zygote, mode, limits) {
            // A pytest that cannot start at all is most often a missing install: say which
            // (asked only now, so a working install pays no extra interpreter start).
            Err(CollectFailure::Broken(text)) => {
                pytest.check_installed().map_err(CollectFailure::Io)?;
                return Err(CollectFailure::Broken(text));
            }
            other => other?,
        };
        match watched {
            Watched::Done(collection) => {
                let mut collection = *collection;
                let mut errors = std::mem::take(&mut culprits);
                errors.append(&mut collection.collected.errors);
                collection.collected.errors = errors;
                return Ok(collection);
            }
            Watched::Culprit { error, path } => {
                culprits.push(error);
                ignored.push(path);
            }
        }
    }
    Err(CollectFailure::Broken(format!(
        "collection crashed or hung {} times; the modules: {}",
        culprits.len(),
        culprits
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// More modules than this crashing on import: something else is wrong.
const MAX_CULPRITS: usize = 20;

enum Watched {
    Done(Box<Collection>),
    /// The collector in flight crashed or hung: its error, and the path to leave out.
    Culprit {
        error: CollectError,
        path: String,
    },
}

/// What the collecting zygote has said so far, and its watchdog.
struct Watch {
    collected: Collected,
    progress: Progress,
    /// `collected`: every item is reported.
    items_done: bool,
    /// pytest's session finished.
    finished: bool,
    internal_error: Option<String>,
    last_event: Instant,
    dog: Watchdog,
}

/// What an event ends the watch with, if it does.
enum Said {
    Refused(String),
    /// Fork mode: collected, and ready to fork.
    Ready,
    /// Fork mode was asked for, but the zygote cannot fork safely: why.
    NoFork(String),
}

impl Watch {
    fn event(&mut self, event: Event, mode: Mode) -> Option<Said> {
        match event {
            Event::Item(item) => self.collected.items.push(item),
            Event::Collected {
                initpaths,
                cache_dir,
                maxfail,
                ..
            } => {
                self.collected.initial_paths = initpaths;
                self.collected.cache_dir = cache_dir;
                self.collected.pytest_maxfail = maxfail;
                self.items_done = true
            }
            Event::InternalError { text } => self.internal_error = Some(text),
            Event::SessionFinish { .. } => self.finished = true,
            Event::Refused { text } => return Some(Said::Refused(text)),
            Event::Ready { .. } if self.items_done && mode == Mode::Fork => {
                return Some(Said::Ready)
            }
            Event::NoFork { why } => return Some(Said::NoFork(why)),
            other => self.progress.apply(other, &mut self.collected),
        }
        None
    }

    /// What the watchdog is shown: no test in flight; in collect mode, once every item is
    /// reported, the session end's time limit from the last event.
    fn seen(&self, mode: Mode, limits: &CollectLimits) -> Seen {
        let over = mode == Mode::Collect && self.items_done && self.internal_error.is_none();
        Seen {
            in_flight: None,
            last_event: self.last_event,
            quiet_limit: limits.quiet,
            session_over: over.then_some(self.last_event),
            session_end_limit: limits.session_end,
        }
    }

    fn done(
        self,
        zygote: Option<Zygote>,
        no_fork: Option<String>,
        warnings: Vec<String>,
    ) -> Watched {
        Watched::Done(Box::new(Collection {
            collected: self.collected,
            zygote,
            no_fork,
            warnings,
            collect_s: self.progress.collect_s,
        }))
    }

    /// The zygote has ended (or was ended by the watchdog): the collection, the module it
    /// died or hung in, or why there is none.
    fn ended(
        self,
        status: ExitStatus,
        zygote: &Zygote,
        mode: Mode,
        limits: &CollectLimits,
    ) -> Result<Watched, CollectFailure> {
        match self.dog.why() {
            Some(Why::Quiet) => return self.hung(zygote, limits),
            Some(Why::Lingered) => {
                let warning = format!(
                    "the collecting pytest did not end {} after reporting its tests (its session end: a sessionfinish hook or an exit handler; session-end-timeout); killed",
                    crate::clock::human(limits.session_end),
                );
                return Ok(self.done(None, None, vec![warning]));
            }
            _ => {}
        }
        let how = platform::describe_exit(status);
        let log = tail_of(&zygote.log, 60);
        if !self.items_done && self.internal_error.is_none() {
            if let Some((id, path, _)) = self.progress.open.last() {
                return Ok(Watched::Culprit {
                    error: CollectError {
                        id: id.clone(),
                        text: format!(
                            "pytest died ({how}) while collecting {id}; the rest was \
                             collected without it. Its output:\n{}",
                            log.trim_end()
                        ),
                        message: Some(format!("pytest died ({how}) while collecting {id}")),
                    },
                    path: path.clone(),
                });
            }
        }
        let usable = mode == Mode::Collect
            && self.items_done
            && self.finished
            && self.internal_error.is_none()
            && matches!(status.code(), Some(0..=2 | 5));
        if usable {
            return Ok(self.done(None, None, Vec::new()));
        }
        let text = match self.internal_error {
            Some(internal) => format!("{internal}\n{log}"),
            None => log,
        };
        Err(CollectFailure::Broken(format!(
            "pytest could not collect the tests ({how}); its output:\n{}",
            text.trim_end()
        )))
    }

    /// No progress for the quiet limit: the watchdog dumped the stacks and ended pytest.
    fn hung(self, zygote: &Zygote, limits: &CollectLimits) -> Result<Watched, CollectFailure> {
        let stacks = std::fs::read_to_string(&zygote.stacks).unwrap_or_default();
        let limit = crate::clock::human(limits.quiet);
        match self.progress.open.last() {
            Some((id, path, _)) => Ok(Watched::Culprit {
                error: CollectError {
                    id: id.clone(),
                    text: format!(
                        "hung: collecting {id} made no progress for {limit}; mtest dumped \
                         its stacks and killed pytest; the rest was collected without it.\n\
                         Stacks:\n{}",
                        stacks.trim_end()
                    ),
                    message: Some(format!(
                        "hung: collecting {id} made no progress for {limit}"
                    )),
                },
                path: path.clone(),
            }),
            None => Err(CollectFailure::Broken(format!(
                "pytest hung outside any test module for {limit} while collecting; \
                 stacks:\n{}",
                stacks.trim_end()
            ))),
        }
    }
}

/// Watches the collecting zygote until it has collected (fork mode: and is ready to fork),
/// ended, or hung; the watchdog of the workers decides when it is hung or lingers.
fn watch(
    mut zygote: Zygote,
    mode: Mode,
    limits: &CollectLimits,
) -> Result<Watched, CollectFailure> {
    let interrupts = platform::interrupts();
    let mut w = Watch {
        collected: Collected {
            command: zygote.command.clone(),
            ..Collected::default()
        },
        progress: Progress::default(),
        items_done: false,
        finished: false,
        internal_error: None,
        last_event: Instant::now(),
        dog: Watchdog::default(),
    };
    loop {
        let events = zygote.read();
        if !events.is_empty() {
            w.last_event = Instant::now();
        }
        w.collected.items.reserve(events.len());
        for event in events {
            // A line lost could be a test lost: the collection is not to be trusted.
            match w.event(event.map_err(unreadable)?, mode) {
                None => {}
                Some(Said::Refused(text)) => return Err(CollectFailure::Refused(text)),
                Some(Said::Ready) => return Ok(w.done(Some(zygote), None, Vec::new())),
                Some(Said::NoFork(why)) => {
                    zygote.quit(Duration::from_secs(30), || {});
                    return Ok(w.done(None, Some(why), Vec::new()));
                }
            }
        }
        if platform::interrupts() > interrupts {
            zygote.kill();
            return Err(CollectFailure::Interrupted);
        }
        if let Some(status) = zygote.ended() {
            // Whatever it wrote before it ended.
            for event in zygote.read() {
                if let Some(Said::Refused(text)) = w.event(event.map_err(unreadable)?, mode) {
                    return Err(CollectFailure::Refused(text));
                }
            }
            return w.ended(status, &zygote, mode, limits);
        }
        if let Some(action) = w.dog.tick(Instant::now(), &w.seen(mode, limits)) {
            super::signal(zygote.pid, action);
        }
        // Woken by what the zygote writes; the rest (its end, a hang) is seen on the tick.
        zygote.wait(Duration::from_millis(20));
    }
}

/// The last `lines` lines of a text file (lossy), for error messages and bundles.
pub fn tail_of(path: &Path, lines: usize) -> String {
    let mut text = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let skip = len.saturating_sub(256 * 1024);
        if skip > 0 {
            use std::io::Seek;
            let _ = f.seek(std::io::SeekFrom::Start(skip));
        }
        let _ = f.read_to_end(&mut text);
    }
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
