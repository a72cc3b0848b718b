//! Where the controller keeps its own state: `$XDG_STATE_HOME/swpush`, else
//! `~/.local/state/swpush`. Run records live in `runs/`
//! ([`crate::report::record`]), run locks in `locks/` ([`crate::lock`]).
//!
//! This module only names the places; creating them, and their modes, is
//! left to the code that writes into them.

use std::path::{Path, PathBuf};

/// The controller's state directory: `$XDG_STATE_HOME` if set and absolute,
/// else `$HOME/.local/state`; `None` when neither is usable.
pub fn state_home() -> Option<PathBuf> {
    state_home_from(
        std::env::var_os("XDG_STATE_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

fn state_home_from(xdg_state_home: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    xdg_state_home.filter(|p| p.is_absolute()).or_else(|| {
        home.filter(|p| p.is_absolute())
            .map(|h| h.join(".local/state"))
    })
}

/// Where run records are kept: `STATE_HOME/swpush/runs`.
pub fn runs_dir(state_home: &Path) -> PathBuf {
    state_home.join("swpush/runs")
}

/// Where run locks are kept: `STATE_HOME/swpush/locks`.
pub fn locks_dir(state_home: &Path) -> PathBuf {
    state_home.join("swpush/locks")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_home_prefers_absolute_xdg_state_home() {
        let p = |s: &str| Some(PathBuf::from(s));
        let cases = [
            (p("/x/state"), p("/home/u"), p("/x/state")),
            (p("relative"), p("/home/u"), p("/home/u/.local/state")),
            (p(""), p("/home/u"), p("/home/u/.local/state")),
            (None, p("/home/u"), p("/home/u/.local/state")),
            (None, p(""), None),
            (None, None, None),
        ];
        for (xdg, home, expected) in cases {
            assert_eq!(
                state_home_from(xdg.clone(), home.clone()),
                expected,
                "{xdg:?} {home:?}"
            );
        }
    }
}
