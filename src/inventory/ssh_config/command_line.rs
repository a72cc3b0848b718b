//! `ansible_ssh_common_args`, `ansible_ssh_extra_args` and
//! `ansible_ssh_args`, read as ssh's command line.

use std::sync::Arc;

use super::keywords::keyword;
use super::{At, Setting, parse_port, split_args, split_line};

/// Reads `ansible_ssh_common_args` / `ansible_ssh_extra_args` (named by
/// `var`) as ssh's command line: `-o Keyword=value`, `-J`, `-p`, `-l`, `-i`
/// and a few flags without effect on the connection. Anything else is an
/// error naming it: swpush will not guess what ssh would do with it.
pub fn command_line_settings(var: &str, text: &str) -> Result<Vec<Setting>, String> {
    let words = split_args(text).map_err(|e| format!("`{var}`: {e}"))?;
    let at = At {
        file: Arc::from(var),
        line: 0,
    };
    let mut settings = Vec::new();
    let mut words = words.iter();
    while let Some(word) = words.next() {
        let Some(flag) = word.strip_prefix('-').and_then(|f| f.chars().next()) else {
            return Err(format!(
                "`{var}`: `{word}` is not an ssh option swpush can apply"
            ));
        };
        let attached = &word[1 + flag.len_utf8()..];
        let mut value = || -> Result<String, String> {
            if attached.is_empty() {
                words
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("`{var}`: `-{flag}` needs a value"))
            } else {
                Ok(attached.to_owned())
            }
        };
        let (word, args) = match flag {
            'o' => {
                let option = value()?;
                split_line(&option)
                    .map_err(|e| format!("`{var}`: {e}"))?
                    .ok_or_else(|| format!("`{var}`: empty `-o`"))?
            }
            'J' => ("ProxyJump".to_owned(), vec![value()?]),
            'p' => ("Port".to_owned(), vec![value()?]),
            'l' => ("User".to_owned(), vec![value()?]),
            'i' => ("IdentityFile".to_owned(), vec![value()?]),
            'b' => ("BindAddress".to_owned(), vec![value()?]),
            'B' => ("BindInterface".to_owned(), vec![value()?]),
            'c' => ("Ciphers".to_owned(), vec![value()?]),
            'm' => ("MACs".to_owned(), vec![value()?]),
            '4' | '6' if attached.is_empty() => (
                "AddressFamily".to_owned(),
                vec![if flag == '4' { "inet" } else { "inet6" }.to_owned()],
            ),
            // Verbosity, compression, agent/X11 forwarding, tty requests:
            // nothing about where or how the connection goes.
            'q' | 'v' | 'C' | 'A' | 'a' | 'x' | 'X' | 'Y' | 'T' | 't' | 'K' | 'k' | 'g' | 'n'
                if attached.chars().all(|c| c == flag) =>
            {
                continue;
            }
            _ => {
                return Err(format!(
                    "`{var}`: `{word}` is an ssh option swpush does not implement; not connecting another way than ssh would"
                ));
            }
        };
        let Some((keyword, class)) = keyword(&word) else {
            return Err(format!("`{var}`: unknown ssh option `{word}`"));
        };
        if matches!(keyword, "Host" | "Match" | "Include") {
            return Err(format!("`{var}`: `-o {keyword}` is not an option"));
        }
        if keyword == "Port" && args.first().and_then(|p| parse_port(p)).is_none() {
            return Err(format!("`{var}`: `Port` needs a port number"));
        }
        if args.is_empty() {
            return Err(format!("`{var}`: `{keyword}` needs a value"));
        }
        super::resolve::check_value(keyword, &args).map_err(|e| format!("`{var}`: {e}"))?;
        settings.push(Setting {
            keyword,
            class,
            args,
            at: at.clone(),
        });
    }
    Ok(settings)
}

/// One setting as a command-line `-o KEYWORD=VALUE` from `source` (swpush's
/// own `-u`/`--private-key`, the inventory's user and port, as Ansible
/// passes them to ssh).
pub fn option(source: &str, name: &str, value: &str) -> Option<Setting> {
    let (keyword, class) = keyword(name)?;
    Some(Setting {
        keyword,
        class,
        args: vec![value.to_owned()],
        at: At {
            file: Arc::from(source),
            line: 0,
        },
    })
}
