//! The live display while a run is in flight (SPEC §7): an overall bar
//! (`[=====>   ] 12/40 hosts`) and one spinner line per host in flight with
//! its phase, names padded to one width; hosts in flight past what the
//! terminal's height holds are one line, `+N more`, and take the place of
//! a host that ends. Drawn on stdout only when the caller enables it (stdout is a
//! terminal, text format, not quiet); otherwise every call is a no-op.
//! It is drawn in the run's [`Look`] (ASCII spinner and text when the
//! locale is not UTF-8).
//!
//! It shows progress, and one line for each host that ends without
//! succeeding, as it ends (above the display, or on stderr when there is
//! none: stdout may be JSON): what every host ended in is reported by
//! [`report`](crate::report) once [`Progress::finish`] has cleared the display.
//!
//! Each host's line also times its phases, drawn or not: the report's
//! [`PhaseTime`]s (the JSON's `phases`, `-v`'s block).

use std::collections::VecDeque;
use std::fmt;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::look::Look;
use crate::outcome::Status;
use crate::report::text::MAX_COLUMN_WIDTH;
use crate::untrusted::{MAX_MESSAGE, bound, terminal_safe};

/// Most of a detail shown after a host's phase: the line is one row of
/// the display, and the detail may come from the client.
const MAX_DETAIL: usize = 80;

/// The spinner's frames in ASCII, the last one for a finished line.
const ASCII_SPINNER: &str = "-\\|/ ";

/// What a host is doing right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Connecting,
    Verifying,
    Waiting,
    Uploading,
    /// The client fetches the package from a mirror (src/mirror.rs).
    Fetching,
    Installing,
    /// The package's health check runs on the new release.
    Checking,
    /// The controller logs in again to confirm the new release.
    Confirming,
}

/// In JSON, a phase is its word (`"checking health"`).
impl serde::Serialize for Phase {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Phase {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let word = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Phase::ALL
            .into_iter()
            .find(|phase| phase.to_string() == word)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown phase `{word}`")))
    }
}

impl Phase {
    /// Every phase, in the order a host goes through them.
    pub const ALL: [Phase; 8] = [
        Phase::Connecting,
        Phase::Verifying,
        Phase::Waiting,
        Phase::Uploading,
        Phase::Fetching,
        Phase::Installing,
        Phase::Checking,
        Phase::Confirming,
    ];
}

/// How long a host spent in one [`Phase`], all its stays in it together
/// (a host that waits, uploads and waits again has one `waiting`).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PhaseTime {
    pub phase: Phase,
    #[serde(serialize_with = "crate::report::millis")]
    pub seconds: f64,
}

/// When a host entered each phase, display or not: the report's
/// [`PhaseTime`]s (`-v` shows them, the JSON always has them).
#[derive(Debug)]
struct Timings {
    entered: Vec<(Phase, Instant)>,
}

impl Timings {
    fn new() -> Timings {
        Timings {
            entered: vec![(Phase::Connecting, Instant::now())],
        }
    }

    /// Time per phase up to `end`, in the order first entered.
    fn times(&self, end: Instant) -> Vec<PhaseTime> {
        let mut times: Vec<PhaseTime> = Vec::new();
        let ends = self.entered.iter().skip(1).map(|(_, at)| *at);
        for ((phase, from), to) in self.entered.iter().zip(ends.chain([end])) {
            let seconds = to.saturating_duration_since(*from).as_secs_f64();
            match times.iter_mut().find(|t| t.phase == *phase) {
                Some(time) => time.seconds += seconds,
                None => times.push(PhaseTime {
                    phase: *phase,
                    seconds,
                }),
            }
        }
        times
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Phase::Connecting => "connecting",
            Phase::Verifying => "verifying",
            Phase::Waiting => "waiting",
            Phase::Uploading => "uploading",
            Phase::Fetching => "fetching",
            Phase::Installing => "installing",
            Phase::Checking => "checking health",
            Phase::Confirming => "confirming",
        })
    }
}

/// The display of a whole run. Cheap to clone; clones share one display, so
/// each host's task can hold its own.
#[derive(Clone)]
pub struct Progress {
    shared: Option<Arc<Shared>>,
    /// How lines on stderr are drawn when there is no display.
    look: Look,
}

struct Shared {
    multi: MultiProgress,
    overall: ProgressBar,
    /// Hosts done that did not succeed; under a lock so that the bar's
    /// text never goes back to a smaller count.
    not_done: Mutex<u64>,
    /// The longest host name so far, so that phases line up.
    name_width: AtomicUsize,
    /// Set by [`Progress::stopping`]: the bar says so from then on.
    stopping: AtomicBool,
    look: Look,
    /// Most host lines drawn at once: the terminal's height less the bar
    /// and the `+N more` line.
    max_shown: usize,
    slots: Mutex<Slots>,
    /// Each line's id, to find it among the waiting.
    next_id: AtomicU64,
}

/// Which host lines are drawn and which wait for a place.
#[derive(Default)]
struct Slots {
    shown: usize,
    /// Hosts in flight not drawn, oldest first: their bars are kept up to
    /// date, hidden, and drawn when a place frees.
    waiting: VecDeque<(u64, ProgressBar)>,
    /// `+N more`, while some wait.
    more: Option<ProgressBar>,
}

impl Shared {
    /// Draws `bar`, above the `+N more` line if there is one.
    fn show(&self, slots: &Slots, bar: ProgressBar) -> ProgressBar {
        let bar = match &slots.more {
            Some(more) => self.multi.insert_before(more, bar),
            None => self.multi.add(bar),
        };
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    }

    /// The `+N more` line as `slots` has it: there while some wait.
    fn update_more(&self, slots: &mut Slots) {
        let waiting = slots.waiting.len();
        match (&slots.more, waiting) {
            (Some(more), 0) => {
                more.finish_and_clear();
                self.multi.remove(more);
                slots.more = None;
            }
            (Some(more), n) => more.set_message(format!("+{n} more")),
            (None, 0) => {}
            (None, n) => {
                let more = ProgressBar::new_spinner()
                    .with_style(
                        ProgressStyle::with_template("  {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    )
                    .with_message(format!("+{n} more"));
                slots.more = Some(self.multi.add(more));
            }
        }
    }
}

/// The rows of the terminal on stdout, if it is one that says.
fn terminal_rows() -> Option<usize> {
    // SAFETY: TIOCGWINSZ only writes a winsize into `size`, which outlives
    // the call; an fd that is no terminal makes it fail, nothing more.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_row > 0).then_some(usize::from(size.ws_row))
}

/// Host lines for a terminal of `rows` (24 when it does not say): one row
/// for the bar, one for `+N more`, one left for the cursor; at least one.
fn max_shown(rows: Option<usize>) -> usize {
    rows.unwrap_or(24).saturating_sub(3).max(1)
}

impl Progress {
    /// Whether stdout is a terminal, the first condition for `enabled`.
    pub fn stdout_is_terminal() -> bool {
        std::io::stdout().is_terminal()
    }

    /// `enabled` should be: stdout is a terminal ([`Progress::stdout_is_terminal`]),
    /// `--format text` and not `--quiet`.
    pub fn new(total_hosts: usize, enabled: bool, look: Look) -> Progress {
        if enabled {
            let rows = terminal_rows();
            Progress::with_target(total_hosts, ProgressDrawTarget::stdout(), look, rows)
        } else {
            // Not drawn on a terminal: no colour on stderr either.
            let look = Look {
                colour: false,
                ..look
            };
            Progress { shared: None, look }
        }
    }

    fn with_target(
        total_hosts: usize,
        target: ProgressDrawTarget,
        look: Look,
        rows: Option<usize>,
    ) -> Progress {
        let multi = MultiProgress::with_draw_target(target);
        // The bar goes on top: indicatif drops the lines that do not fit the
        // terminal from the bottom, and the bar must stay visible.
        let overall = multi.add(
            ProgressBar::new(total_hosts as u64).with_style(
                ProgressStyle::with_template("{prefix}[{bar:30}] {pos}/{len} hosts{msg}")
                    .map(|style| style.progress_chars("=> "))
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
        );
        overall.tick();
        Progress {
            shared: Some(Arc::new(Shared {
                multi,
                overall,
                not_done: Mutex::new(0),
                name_width: AtomicUsize::new(0),
                stopping: AtomicBool::new(false),
                look,
                max_shown: max_shown(rows),
                slots: Mutex::new(Slots::default()),
                next_id: AtomicU64::new(0),
            })),
            look,
        }
    }

    /// Pads host lines to the longest of `names` (at most
    /// [`MAX_COLUMN_WIDTH`]) from the first line on, so that the phases
    /// of hosts started early line up with those of hosts started later.
    pub fn align_to<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        if let Some(shared) = &self.shared {
            let widest = names
                .into_iter()
                .map(|name| self.look.text(terminal_safe(name)).chars().count())
                .max()
                .unwrap_or(0);
            shared
                .name_width
                .fetch_max(widest.min(MAX_COLUMN_WIDTH), Ordering::Relaxed);
        }
    }

    /// A line for `name`, in phase [`Phase::Connecting`], until
    /// [`HostProgress::done`].
    pub fn host(&self, name: &str) -> HostProgress {
        let phase = Mutex::new(Phase::Connecting);
        let timings = Mutex::new(Timings::new());
        let shown = self.look.text(terminal_safe(name)).into_owned();
        let Some(shared) = &self.shared else {
            return HostProgress {
                line: None,
                phase,
                timings,
                name: shown,
                look: self.look,
            };
        };
        let name = &shown;
        let len = name.chars().count().min(MAX_COLUMN_WIDTH);
        let width = shared.name_width.fetch_max(len, Ordering::Relaxed).max(len);
        // Padded by hand: a format width past 65 535 panics.
        let pad = " ".repeat(width.saturating_sub(name.chars().count()));
        let mut style = ProgressStyle::with_template("  {spinner} {prefix} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        if shared.look.ascii {
            // indicatif's default spinner is braille.
            style = style.tick_chars(ASCII_SPINNER);
        }
        // Hidden until it is drawn: a bar of no MultiProgress draws on stderr.
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
            .with_style(style)
            .with_prefix(format!("{name}{pad}"))
            .with_message(Phase::Connecting.to_string());
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let mut slots = shared.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let bar = if slots.shown < shared.max_shown {
            slots.shown += 1;
            shared.show(&slots, bar)
        } else {
            slots.waiting.push_back((id, bar.clone()));
            shared.update_more(&mut slots);
            bar
        };
        drop(slots);
        HostProgress {
            line: Some(Line {
                bar,
                id,
                shared: Arc::clone(shared),
            }),
            phase,
            timings,
            name: shown,
            look: self.look,
        }
    }

    /// The run is at batch `n` of `of` (`--serial`): the bar says so.
    pub fn batch(&self, n: usize, of: usize) {
        if let Some(shared) = &self.shared {
            shared.overall.set_prefix(format!("batch {n}/{of} "));
        }
    }

    /// A run that is stopping says so, in a line that stays above the
    /// display (on stderr when there is none) and on the bar until the end.
    pub fn stopping(&self, notice: &str) {
        match &self.shared {
            Some(shared) => {
                shared.stopping.store(true, Ordering::SeqCst);
                // A failed print leaves the bar's own word.
                let _ = shared.multi.println(shared.look.text(notice));
                let n = shared
                    .not_done
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                shared.overall.set_message(overall_message(*n, true));
            }
            None => eprintln!("{}", self.look.text(notice)),
        }
    }

    /// Clear the display, so that the report prints on a clean screen;
    /// nothing is drawn after this.
    pub fn finish(&self) {
        if let Some(shared) = &self.shared {
            shared.overall.finish_and_clear();
            // A failed clear leaves stray lines on a terminal that is going
            // away anyway; the report matters more.
            let _ = shared.multi.clear();
            shared.multi.set_draw_target(ProgressDrawTarget::hidden());
        }
    }
}

/// One host's line. Dropping it without [`done`](HostProgress::done) (a task
/// cancelled by its timeout) removes the line and counts the host as not done.
pub struct HostProgress {
    line: Option<Line>,
    /// Kept with or without a display: the fan-out reads it.
    phase: Mutex<Phase>,
    timings: Mutex<Timings>,
    /// The host's name, terminal-safe and drawn: what its end line says.
    name: String,
    look: Look,
}

struct Line {
    bar: ProgressBar,
    id: u64,
    shared: Arc<Shared>,
}

/// The overall bar's text after `N/M hosts`.
fn overall_message(not_done: u64, stopping: bool) -> String {
    let not_done = if not_done > 0 {
        format!(", {not_done} not done")
    } else {
        String::new()
    };
    let stopping = if stopping {
        ", stopping: no new host starts, waiting for those in flight"
    } else {
        ""
    };
    format!("{not_done}{stopping}")
}

impl HostProgress {
    /// Show `phase`; a new phase drops the previous phase's detail, the same
    /// phase again keeps it.
    pub fn phase(&self, phase: Phase) {
        let mut current = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        if *current != phase {
            *current = phase;
            let mut timings = self.timings.lock().unwrap_or_else(PoisonError::into_inner);
            timings.entered.push((phase, Instant::now()));
            drop(timings);
            if let Some(line) = &self.line {
                line.bar.set_message(phase.to_string());
            }
        }
    }

    /// How long the host has spent in each phase so far, from when its
    /// line was made (whether or not it is drawn).
    pub fn times(&self) -> Vec<PhaseTime> {
        let timings = self.timings.lock().unwrap_or_else(PoisonError::into_inner);
        timings.times(Instant::now())
    }

    /// Whether the host has started changing anything: from
    /// [`Phase::Installing`] on, stopping it would leave work to undo.
    pub fn installing(&self) -> bool {
        let phase = *self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        matches!(
            phase,
            Phase::Installing | Phase::Checking | Phase::Confirming
        )
    }

    /// Text after the phase, e.g. `waiting (busy, try 2/6)`.
    pub fn detail(&self, text: &str) {
        if let Some(line) = &self.line {
            let phase = *self.phase.lock().unwrap_or_else(PoisonError::into_inner);
            let detail = bound(text, MAX_DETAIL);
            let detail = line.shared.look.text(terminal_safe(&detail));
            line.bar.set_message(format!("{phase} ({detail})"));
        }
    }

    /// Remove the line and advance the overall bar. A host that did not
    /// succeed (nor was skipped) says so at once, in one line,
    /// `swpush: web3 failed: MESSAGE`: above the display, or on stderr
    /// without one (so that a JSON stdout stays JSON and cron mails it).
    pub fn done(mut self, status: Status, message: &str) {
        if !status.ok_for_exit() {
            let line = self.end_line(status, message);
            match &self.line {
                // A failed print loses one line; the report has it all.
                Some(shown) => {
                    let _ = shown.shared.multi.println(line);
                }
                None => eprintln!("{line}"),
            }
        }
        self.close(status.ok_for_exit());
    }

    /// `swpush: web3 failed: MESSAGE`, terminal-safe, the status painted.
    fn end_line(&self, status: Status, message: &str) -> String {
        let message = bound(message, MAX_MESSAGE);
        let message = self.look.text(terminal_safe(&message));
        let word = self.look.paint(status, &status.to_string()).into_owned();
        let said = if message.is_empty() {
            String::new()
        } else {
            format!(": {message}")
        };
        format!("swpush: {} {word}{said}", self.name)
    }

    fn close(&mut self, ok: bool) {
        if let Some(line) = self.line.take() {
            line.bar.finish_and_clear();
            let shared = &line.shared;
            let mut slots = shared.slots.lock().unwrap_or_else(PoisonError::into_inner);
            match slots.waiting.iter().position(|(id, _)| *id == line.id) {
                Some(at) => {
                    slots.waiting.remove(at);
                }
                None => {
                    shared.multi.remove(&line.bar);
                    slots.shown -= 1;
                    // The host waiting longest takes its place.
                    if let Some((_, next)) = slots.waiting.pop_front() {
                        shared.show(&slots, next);
                        slots.shown += 1;
                    }
                }
            }
            shared.update_more(&mut slots);
            drop(slots);
            if !ok {
                let mut n = (line.shared.not_done.lock()).unwrap_or_else(PoisonError::into_inner);
                *n += 1;
                let stopping = line.shared.stopping.load(Ordering::SeqCst);
                line.shared
                    .overall
                    .set_message(overall_message(*n, stopping));
            }
            line.shared.overall.inc(1);
        }
    }
}

impl Drop for HostProgress {
    fn drop(&mut self) {
        self.close(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hidden(total: usize) -> Progress {
        Progress::with_target(total, ProgressDrawTarget::hidden(), Look::PLAIN, None)
    }

    #[test]
    fn shareable_between_tasks() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        fn movable<T: Send + Sync + 'static>() {}
        shareable::<Progress>();
        movable::<HostProgress>();
    }

    #[test]
    fn phases_read_as_lowercase_words() {
        let cases = [
            (Phase::Connecting, "connecting"),
            (Phase::Verifying, "verifying"),
            (Phase::Waiting, "waiting"),
            (Phase::Uploading, "uploading"),
            (Phase::Fetching, "fetching"),
            (Phase::Installing, "installing"),
            (Phase::Checking, "checking health"),
            (Phase::Confirming, "confirming"),
        ];
        for (phase, word) in cases {
            assert_eq!(phase.to_string(), word);
        }
    }

    #[test]
    fn disabled_does_nothing() {
        let progress = Progress::new(3, false, Look::PLAIN);
        assert!(progress.shared.is_none());
        let host = progress.host("web1");
        assert!(host.line.is_none());
        host.phase(Phase::Uploading);
        host.detail("1 MiB of 10 MiB");
        host.done(Status::Installed, "");
        drop(progress.host("web2"));
        progress.clone().finish();
    }

    #[test]
    fn lines_show_phase_and_detail() {
        let progress = hidden(1);
        let host = progress.host("web1");
        let line = host.line.as_ref().unwrap();
        assert_eq!(line.bar.message(), "connecting");
        host.phase(Phase::Waiting);
        host.detail("busy, try 2/6");
        assert_eq!(line.bar.message(), "waiting (busy, try 2/6)");
        host.phase(Phase::Waiting);
        assert_eq!(line.bar.message(), "waiting (busy, try 2/6)");
        host.phase(Phase::Uploading);
        assert_eq!(line.bar.message(), "uploading");
        host.detail("a\nb\x1b[2J\u{202e}");
        assert_eq!(line.bar.message(), r"uploading (a b\u{1b}[2J\u{202e})");
        host.detail(&"x".repeat(70_000));
        assert_eq!(
            line.bar.message(),
            format!("uploading ({}…)", "x".repeat(MAX_DETAIL - 3))
        );
        assert_eq!(line.bar.prefix(), "web1");
        let longer = progress.host("web10");
        assert_eq!(longer.line.as_ref().unwrap().bar.prefix(), "web10");
        assert_eq!(
            progress.host("db1").line.as_ref().unwrap().bar.prefix(),
            "db1  "
        );
        // A format width past 65 535 panics: names are padded by hand, to
        // at most MAX_COLUMN_WIDTH.
        let long = progress.host(&"h".repeat(70_000));
        assert_eq!(long.line.as_ref().unwrap().bar.prefix(), "h".repeat(70_000));
        let after = progress.host("web2");
        let prefix = after.line.as_ref().unwrap().bar.prefix();
        assert_eq!(prefix, format!("web2{}", " ".repeat(MAX_COLUMN_WIDTH - 4)));
    }

    #[test]
    fn counts_hosts_done_from_many_threads() {
        let progress = hidden(40);
        let threads: Vec<_> = (0..40)
            .map(|i| {
                let progress = progress.clone();
                std::thread::spawn(move || {
                    let host = progress.host(&format!("web{i}"));
                    host.phase(Phase::Installing);
                    match i % 4 {
                        0 => host.done(Status::Busy, "still busy"),
                        1 => drop(host),
                        2 => host.done(Status::Skipped, ""),
                        _ => host.done(Status::Installed, ""),
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let shared = progress.shared.as_ref().unwrap();
        assert_eq!(shared.overall.position(), 40);
        assert_eq!(*shared.not_done.lock().unwrap(), 20);
        assert_eq!(shared.overall.message(), ", 20 not done");
        progress.finish();
        assert!(shared.overall.is_finished());
    }

    /// The stop notice is printed above the display, so redraws (hosts
    /// changing phase, ending) do not erase it, and the bar says stopping.
    #[test]
    fn a_stop_stays_on_screen_and_the_bar_says_so() {
        let term = indicatif::InMemoryTerm::new(12, 160);
        let progress = Progress::with_target(
            3,
            ProgressDrawTarget::term_like(Box::new(term.clone())),
            Look::PLAIN,
            Some(12),
        );
        let hosts: Vec<_> = ["web1", "web2", "web3"]
            .iter()
            .map(|h| progress.host(h))
            .collect();
        progress.batch(2, 4);
        progress.stopping("swpush: interrupted: starting no new host");
        let mut hosts = hosts.into_iter();
        hosts.next().unwrap().done(Status::NotAttempted, "");
        let second = hosts.next().unwrap();
        second.phase(Phase::Installing);
        second.detail("pre_install");
        let shared = progress.shared.as_ref().unwrap();
        shared.multi.suspend(|| {}); // a redraw, as indicatif's tick does
        let screen = term.contents();
        assert!(
            screen.contains("swpush: interrupted: starting no new host"),
            "{screen}"
        );
        assert!(
            screen
                .contains("1 not done, stopping: no new host starts, waiting for those in flight"),
            "{screen}"
        );
        assert!(screen.contains("web2 installing (pre_install)"), "{screen}");
        assert!(screen.contains("batch 2/4 ["), "{screen}");
    }

    /// A host that did not succeed says so at once, above the display and
    /// terminal-safe, its status in colour when the look has it; one that
    /// succeeded or was skipped says nothing.
    #[test]
    fn a_host_not_done_says_so_as_it_ends() {
        let term = indicatif::InMemoryTerm::new(12, 200);
        let target = ProgressDrawTarget::term_like(Box::new(term.clone()));
        let look = Look {
            colour: true,
            ..Look::PLAIN
        };
        let progress = Progress::with_target(4, target, look, Some(12));
        let hosts: Vec<_> = ["web1", "web2", "web3\x1b[2J", "web4"]
            .iter()
            .map(|h| progress.host(h))
            .collect();
        let mut hosts = hosts.into_iter();
        hosts.next().unwrap().done(Status::Installed, "fine");
        hosts.next().unwrap().done(Status::Skipped, "policy");
        let third = hosts.next().unwrap();
        let message = "post_install failed, 1.1.0 is current again\x1b]0;x\x07";
        assert_eq!(
            third.end_line(Status::Failed, message),
            "swpush: web3\\u{1b}[2J \x1b[31mfailed\x1b[0m: \
             post_install failed, 1.1.0 is current again\\u{1b}]0;x\\u{7}"
        );
        third.done(Status::Failed, message);
        hosts.next().unwrap().done(Status::Timeout, "");
        progress.shared.as_ref().unwrap().multi.suspend(|| {});
        let text = term.contents();
        assert!(
            text.contains(
                r"swpush: web3\u{1b}[2J failed: post_install failed, 1.1.0 is current again\u{1b}]0;x\u{7}"
            ),
            "{text}"
        );
        assert!(text.contains("swpush: web4 timeout\n"), "{text}");
        assert!(!text.contains("web1") && !text.contains("web2"), "{text}");
    }

    /// In ASCII the spinner, names, details and notices are ASCII.
    #[test]
    fn ascii_when_the_locale_is_not_utf_8() {
        let term = indicatif::InMemoryTerm::new(12, 160);
        let target = ProgressDrawTarget::term_like(Box::new(term.clone()));
        let progress = Progress::with_target(
            2,
            target,
            Look {
                ascii: true,
                ..Look::PLAIN
            },
            Some(12),
        );
        let host = progress.host("café");
        host.phase(Phase::Waiting);
        host.detail("1.0 → 1.2");
        let shared = progress.shared.as_ref().unwrap();
        for _ in 0..3 {
            host.line.as_ref().unwrap().bar.tick();
        }
        progress.stopping("swpush: stopping — now");
        shared.multi.suspend(|| {});
        let screen = term.contents();
        assert!(screen.is_ascii(), "{screen}");
        assert!(
            screen.contains(r"caf\u{e9} waiting (1.0 -> 1.2)"),
            "{screen}"
        );
        assert!(screen.contains("swpush: stopping - now"), "{screen}");
    }

    /// Names are padded to the longest of the run from the first line on;
    /// past the terminal's height, hosts wait in `+N more` and take the
    /// place of a host that ends, oldest first.
    #[test]
    fn lines_align_and_what_does_not_fit_is_n_more() {
        // A terminal of 6 rows, drawn on a taller one: which lines indicatif
        // drops is its business, which hosts are drawn is this display's.
        let term = indicatif::InMemoryTerm::new(40, 100);
        let target = ProgressDrawTarget::term_like(Box::new(term));
        let progress = Progress::with_target(6, target, Look::PLAIN, Some(6));
        let names = ["a", "web10", "b", "c", "d", "e"];
        progress.align_to(names);
        let mut hosts: VecDeque<_> = names.iter().map(|h| progress.host(h)).collect();
        let shared = progress.shared.as_ref().unwrap();
        // The names drawn, and the `+N more` line.
        let drawn = |hosts: &VecDeque<HostProgress>| {
            let bars = hosts.iter().map(|h| &h.line.as_ref().unwrap().bar);
            let names: Vec<String> = bars
                .filter(|b| !b.is_hidden())
                .map(|b| b.prefix())
                .collect();
            let slots = shared.slots.lock().unwrap();
            assert_eq!(slots.shown, names.len());
            (names, slots.more.as_ref().map(|m| m.message()))
        };
        let more = |n: &str| Some(n.to_owned());
        assert_eq!(max_shown(Some(6)), 3);
        assert_eq!(
            drawn(&hosts),
            (
                vec!["a    ".into(), "web10".into(), "b    ".into()],
                more("+3 more")
            )
        );
        hosts.pop_front().unwrap().done(Status::Installed, "");
        assert_eq!(
            drawn(&hosts),
            (
                vec!["web10".into(), "b    ".into(), "c    ".into()],
                more("+2 more")
            )
        );
        // A waiting host that ends leaves the others waiting.
        hosts.remove(4).unwrap().done(Status::Installed, "");
        assert_eq!(drawn(&hosts).1, more("+1 more"));
        hosts.remove(0).unwrap().done(Status::Installed, "");
        assert_eq!(
            drawn(&hosts),
            (vec!["b    ".into(), "c    ".into(), "d    ".into()], None)
        );
        drop(hosts);
        assert_eq!(shared.slots.lock().unwrap().shown, 0);
        assert_eq!(shared.overall.position(), 6);
        assert_eq!(max_shown(Some(2)), 1, "one line at least");
        assert_eq!(max_shown(None), 21);
    }

    /// Each phase's time is kept with or without a display, a phase
    /// entered twice is one entry, in the order first entered.
    #[test]
    fn phases_are_timed_without_a_display() {
        let host = Progress::new(1, false, Look::PLAIN).host("web1");
        std::thread::sleep(Duration::from_millis(30));
        host.phase(Phase::Waiting);
        host.phase(Phase::Uploading);
        std::thread::sleep(Duration::from_millis(20));
        host.phase(Phase::Waiting);
        host.phase(Phase::Waiting);
        let times = host.times();
        let phases: Vec<Phase> = times.iter().map(|t| t.phase).collect();
        assert_eq!(
            phases,
            [Phase::Connecting, Phase::Waiting, Phase::Uploading]
        );
        assert!(times[0].seconds >= 0.03, "{times:?}");
        assert!(times[2].seconds >= 0.02, "{times:?}");
        let json = serde_json::to_string(&times[0]).unwrap();
        assert!(
            json.starts_with(r#"{"phase":"connecting","seconds":"#),
            "{json}"
        );
        for phase in Phase::ALL {
            let word = serde_json::to_string(&phase).unwrap();
            assert_eq!(serde_json::from_str::<Phase>(&word).unwrap(), phase);
        }
        assert!(serde_json::from_str::<Phase>(r#""napping""#).is_err());
    }

    #[test]
    fn done_removes_the_line() {
        let progress = hidden(2);
        let host = progress.host("web1");
        let bar = host.line.as_ref().unwrap().bar.clone();
        host.done(Status::Installed, "");
        assert!(bar.is_finished());
        let shared = progress.shared.as_ref().unwrap();
        assert_eq!(shared.overall.position(), 1);
        assert_eq!(shared.overall.message(), "");
    }
}
