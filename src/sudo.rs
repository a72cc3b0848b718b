//! What a failed `sudo` said, as a message that tells the operator what to
//! do: sudo's own words ("a password is required") name neither swpush's
//! `-K` nor the sudoers setting that fixes it.

/// The report message for a step whose last stderr line is `said`, when
/// that line is sudo refusing; `None` for anything else.
pub fn explain(said: &str) -> Option<String> {
    let said = said.trim();
    let rest = said.strip_prefix("sudo: ")?;
    let advice = if rest.contains("a password is required") {
        "sudo wants a password: pass -K/--ask-become-pass, or give the user NOPASSWD sudo"
    } else if rest.contains("incorrect password") {
        "sudo refused the become password (-K)"
    } else if rest.contains("not in the sudoers file") || rest.contains("is not allowed to") {
        "the user may not sudo on this host"
    } else if rest.contains("a terminal is required") || rest.contains("must have a tty") {
        "sudo wants a terminal (`requiretty`): remove it for this user in sudoers"
    } else {
        return None;
    };
    Some(format!("{advice} ({said})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sudo_refusals_say_what_to_do() {
        let message = explain("sudo: a password is required").unwrap();
        assert!(message.contains("-K/--ask-become-pass") && message.contains("NOPASSWD"));
        assert!(explain("sudo: 1 incorrect password attempt").is_some());
        assert!(explain("tar: short read").is_none());
        assert!(explain("").is_none());
    }
}
