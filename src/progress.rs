//! The live display while a run is in flight (SPEC §7): an overall bar
//! (`[=====>   ] 12/40 hosts`) and one spinner line per host in flight with
//! its phase. Drawn on stdout only when the caller enables it (stdout is a
//! terminal, text format, not quiet); otherwise every call is a no-op.
//! It is drawn in the run's [`Look`] (ASCII spinner and text when the
//! locale is not UTF-8).
//!
//! It shows progress, and one line for each host that ends without
//! succeeding, as it ends (above the display, or on stderr when there is
//! none: stdout may be JSON): what every host ended in is reported by
//! [`report`](crate::report) once [`Progress::finish`] has cleared the display.

use std::fmt;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

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
    Installing,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Phase::Connecting => "connecting",
            Phase::Verifying => "verifying",
            Phase::Waiting => "waiting",
            Phase::Uploading => "uploading",
            Phase::Installing => "installing",
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
            Progress::with_target(total_hosts, ProgressDrawTarget::stdout(), look)
        } else {
            // Not drawn on a terminal: no colour on stderr either.
            let look = Look {
                colour: false,
                ..look
            };
            Progress { shared: None, look }
        }
    }

    fn with_target(total_hosts: usize, target: ProgressDrawTarget, look: Look) -> Progress {
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
            })),
            look,
        }
    }

    /// A line for `name`, in phase [`Phase::Connecting`], until
    /// [`HostProgress::done`].
    pub fn host(&self, name: &str) -> HostProgress {
        let phase = Mutex::new(Phase::Connecting);
        let shown = self.look.text(terminal_safe(name)).into_owned();
        let Some(shared) = &self.shared else {
            return HostProgress {
                line: None,
                phase,
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
        let bar = shared.multi.add(
            ProgressBar::new_spinner()
                .with_style(style)
                .with_prefix(format!("{name}{pad}"))
                .with_message(Phase::Connecting.to_string()),
        );
        bar.enable_steady_tick(Duration::from_millis(100));
        HostProgress {
            line: Some(Line {
                bar,
                shared: Arc::clone(shared),
            }),
            phase,
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
    /// The host's name, terminal-safe and drawn: what its end line says.
    name: String,
    look: Look,
}

struct Line {
    bar: ProgressBar,
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
        ", stopping: waiting for the hosts installing"
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
            if let Some(line) = &self.line {
                line.bar.set_message(phase.to_string());
            }
        }
    }

    /// Whether the host has started changing anything: from
    /// [`Phase::Installing`] on, stopping it would leave work to undo.
    pub fn installing(&self) -> bool {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner) == Phase::Installing
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
            line.shared.multi.remove(&line.bar);
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
        Progress::with_target(total, ProgressDrawTarget::hidden(), Look::PLAIN)
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
            (Phase::Installing, "installing"),
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
            screen.contains("1 not done, stopping: waiting for the hosts installing"),
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
        let progress = Progress::with_target(4, target, look);
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
