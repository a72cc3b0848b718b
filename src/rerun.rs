//! Re-running what did not make it: the command line that re-runs a run on
//! the hosts that did not succeed, which the text report ends with. It is
//! this run's own argv with its `--limit` replaced by `--limit @failed`
//! (which reads this run's record: [`crate::inventory::select`]), quoted
//! for a POSIX shell so that it can be pasted as it is printed.

use std::ffi::OsString;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::inventory::select::FAILED;
use crate::untrusted::is_unsafe;

/// `argv` (program name first) with every `--limit`/`-l` taken out and
/// `--limit @failed` where the first one was (at the end, before any `--`,
/// when there was none), each argument shell-quoted.
pub fn command_line(argv: &[OsString]) -> String {
    let mut out: Vec<OsString> = Vec::with_capacity(argv.len() + 2);
    let mut args = argv.iter();
    out.extend(args.next().cloned());
    let Some(name) = args.next() else {
        return quote_all(&out);
    };
    out.push(name.clone());
    let command = Cli::command();
    let Some(sub) = name.to_str().and_then(|name| command.find_subcommand(name)) else {
        return quote_all(&out);
    };
    // Which options take a value, so that a value is never read as an option.
    let long_takes = |long: &str| {
        sub.get_arguments()
            .any(|a| a.get_long() == Some(long) && a.get_action().takes_values())
    };
    let short_takes = |short: char| {
        sub.get_arguments()
            .any(|a| a.get_short() == Some(short) && a.get_action().takes_values())
    };
    let mut limit_at = None;
    let mut end_of_options = None;
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else {
            out.push(arg.clone());
            continue;
        };
        if text == "--" {
            end_of_options = Some(out.len());
            out.push(arg.clone());
            out.extend(args.by_ref().cloned());
            break;
        }
        if let Some(long) = text.strip_prefix("--") {
            let (long, attached) = match long.split_once('=') {
                Some((long, _)) => (long, true),
                None => (long, false),
            };
            if long == "limit" {
                limit_at.get_or_insert(out.len());
                if !attached {
                    args.next();
                }
                continue;
            }
            out.push(arg.clone());
            if !attached && long_takes(long) {
                out.extend(args.next().cloned());
            }
            continue;
        }
        let Some(cluster) = text.strip_prefix('-').filter(|c| !c.is_empty()) else {
            out.push(arg.clone());
            continue;
        };
        // `-qf 5`, `-ql web`, `-lweb`, `-l=web`: flags, then at most one
        // option whose value is the rest of the word or the next word.
        let mut kept = String::from("-");
        let (mut value_follows, mut limit) = (false, false);
        for (at, short) in cluster.char_indices() {
            if !short_takes(short) {
                kept.push(short);
                continue;
            }
            let rest = &cluster[at + short.len_utf8()..];
            if short == 'l' {
                limit = true;
                if rest.is_empty() {
                    args.next();
                }
            } else {
                kept.push(short);
                kept.push_str(rest);
                value_follows = rest.is_empty();
            }
            break;
        }
        if kept != "-" {
            out.push(kept.into());
            if value_follows {
                out.extend(args.next().cloned());
            }
        }
        if limit {
            limit_at.get_or_insert(out.len());
        }
    }
    let at = limit_at.or(end_of_options).unwrap_or(out.len());
    out.splice(at..at, ["--limit".into(), FAILED.into()]);
    quote_all(&out)
}

fn quote_all(args: &[OsString]) -> String {
    args.iter()
        .map(|arg| quote(arg.as_encoded_bytes()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One argument as a POSIX shell reads it back: as it is when it has only
/// characters no shell treats specially, else in single quotes; with bytes
/// a terminal would act on (or that are not UTF-8), as `$'…'` with `\xHH`
/// escapes (bash, zsh, ksh and POSIX.1-2024 sh read it).
fn quote(arg: &[u8]) -> String {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&b);
    if !arg.is_empty() && arg.iter().all(|&b| plain(b)) {
        // Valid UTF-8: every byte is ASCII.
        return String::from_utf8_lossy(arg).into_owned();
    }
    match std::str::from_utf8(arg) {
        Ok(text) if !text.chars().any(is_unsafe) => format!("'{}'", text.replace('\'', r"'\''")),
        _ => {
            let mut out = String::from("$'");
            for chunk in arg.utf8_chunks() {
                for c in chunk.valid().chars() {
                    match c {
                        '\\' | '\'' => {
                            out.push('\\');
                            out.push(c);
                        }
                        c if is_unsafe(c) => {
                            let mut buf = [0; 4];
                            for b in c.encode_utf8(&mut buf).bytes() {
                                out.push_str(&format!("\\x{b:02x}"));
                            }
                        }
                        c => out.push(c),
                    }
                }
                for b in chunk.invalid() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            out.push('\'');
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(args: &[&str]) -> String {
        let argv: Vec<OsString> = std::iter::once("swpush")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        command_line(&argv)
    }

    #[test]
    fn the_limit_is_replaced_wherever_and_however_it_was_given() {
        let table = [
            (
                &["upgrade", "-i", "inv.yaml", "hello.tar"][..],
                "swpush upgrade -i inv.yaml hello.tar --limit @failed",
            ),
            (
                &["upgrade", "-i", "inv.yaml", "--limit", "web", "hello.tar"],
                "swpush upgrade -i inv.yaml --limit @failed hello.tar",
            ),
            (
                &["install", "--limit=web,!db1", "-q", "-l", "web2", "p.tar"],
                "swpush install --limit @failed -q p.tar",
            ),
            (
                &["install", "-qlweb", "-lweb", "-l=x", "-f", "5", "p.tar"],
                "swpush install -q --limit @failed -f 5 p.tar",
            ),
            // A value that looks like the option is a value.
            (
                &["install", "--report", "-l", "-i", "-l", "p.tar"],
                "swpush install --report -l -i -l p.tar --limit @failed",
            ),
            (
                &["install", "-qi", "inv", "-qf5", "-l", "@failed", "p.tar"],
                "swpush install -qi inv -qf5 --limit @failed p.tar",
            ),
            (
                &["remove", "-i", "h,", "--", "-l"],
                "swpush remove -i h, --limit @failed -- -l",
            ),
            (
                &["enroll", "-i", "my hosts.yaml", "--packages", "it's"],
                r"swpush enroll -i 'my hosts.yaml' --packages 'it'\''s' --limit @failed",
            ),
            (
                &[
                    "rollback",
                    "hello",
                    "-i",
                    "a\u{1b}[2J\u{202e}é\\'",
                    "--to",
                    "",
                ],
                r"swpush rollback hello -i $'a\x1b[2J\xe2\x80\xaeé\\\'' --to '' --limit @failed",
            ),
        ];
        for (args, expected) in table {
            assert_eq!(line(args), expected, "{args:?}");
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_escaped() {
        use std::os::unix::ffi::OsStringExt;
        let argv = [
            OsString::from("swpush"),
            OsString::from("install"),
            OsString::from_vec(b"p\xff.tar".to_vec()),
        ];
        assert_eq!(
            command_line(&argv),
            r"swpush install $'p\xff.tar' --limit @failed"
        );
    }
}
