//! `~`, `%`-tokens and `${VAR}` in the path-like keywords, as ssh(1)
//! expands them when it connects (ssh_config(5) TOKENS and ENVIRONMENT
//! VARIABLES): `CertificateFile`, `IdentityAgent`, `IdentityFile` and
//! `UserKnownHostsFile` take `%% %C %d %h %i %k %L %l %n %p %r %u` and
//! `${VAR}`. A token ssh does not allow there, or an unset variable, is an
//! error naming it: the host is refused, never connected to with a path
//! ssh would not use.

use std::path::Path;

use sha1::{Digest, Sha1};

/// What the tokens stand for, once HostName, Port and User are resolved.
pub(super) struct Tokens<'a> {
    pub home: Option<&'a Path>,
    pub local_user: &'a str,
    /// `%h`: the host name ssh connects to (after `HostName`).
    pub host: &'a str,
    /// `%n`: the name given to ssh.
    pub original: &'a str,
    pub port: u16,
    /// `%r`: the remote user.
    pub remote_user: &'a str,
    /// `%k`: `HostKeyAlias`, else the name given to ssh.
    pub alias: &'a str,
}

impl Tokens<'_> {
    /// `text` with a leading `~` or `~/` made the home, then every token and
    /// `${VAR}` expanded, in one pass as ssh's `percent_dollar_expand`.
    pub(super) fn expand_path(&self, text: &str) -> Result<String, String> {
        let home = || {
            self.home
                .map(|h| h.display().to_string())
                .ok_or_else(|| "`~` or `%d` with HOME unset".to_owned())
        };
        let (start, rest) = if text == "~" {
            (home()?, "")
        } else if let Some(rest) = text.strip_prefix("~/") {
            (home()? + "/", rest)
        } else if text.starts_with('~') {
            return Err(format!(
                "`{text}`: `~USER` paths are not supported by swpush"
            ));
        } else {
            (String::new(), text)
        };
        let mut out = start;
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '%' => {
                    let Some(token) = chars.next() else {
                        return Err(format!("`{text}` ends with a lone `%`"));
                    };
                    out.push_str(&self.token(token, text)?);
                }
                '$' if chars.peek() == Some(&'{') => {
                    chars.next();
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err(format!("`{text}`: `${{` without its `}}`")),
                        }
                    }
                    let value = std::env::var(&name)
                        .map_err(|_| format!("`{text}`: environment variable `{name}` is not set (ssh refuses it too)"))?;
                    out.push_str(&value);
                }
                c => out.push(c),
            }
        }
        Ok(out)
    }

    fn token(&self, token: char, text: &str) -> Result<String, String> {
        Ok(match token {
            '%' => "%".to_owned(),
            'C' => {
                // OpenSSH 9.2's connection hash: SHA-1 of %l%h%p%r.
                let input = format!(
                    "{}{}{}{}",
                    local_host_name()?,
                    self.host,
                    self.port,
                    self.remote_user
                );
                hex::encode(Sha1::digest(input.as_bytes()))
            }
            'd' => self
                .home
                .map(|h| h.display().to_string())
                .ok_or_else(|| "`%d` with HOME unset".to_owned())?,
            'h' => self.host.to_owned(),
            // SAFETY: getuid has no preconditions and cannot fail.
            'i' => unsafe { libc::getuid() }.to_string(),
            'k' => self.alias.to_owned(),
            'L' => {
                let full = local_host_name()?;
                full.split('.').next().unwrap_or_default().to_owned()
            }
            'l' => local_host_name()?,
            'n' => self.original.to_owned(),
            'p' => self.port.to_string(),
            'r' => self.remote_user.to_owned(),
            'u' => self.local_user.to_owned(),
            other => {
                return Err(format!(
                    "`{text}`: `%{other}` is not a token ssh expands here"
                ));
            }
        })
    }
}

/// `HostName` takes `%h` (the name given) and `%%` only.
pub(super) fn expand_host_name(name: &str, original: &str) -> Option<String> {
    expand_percent(name, |token| (token == 'h').then(|| original.to_owned())).ok()
}

/// `text` with `%%` made `%` and every other `%X` made `value(X)`. The
/// error is the token `value` does not know, or `None` for a `%` at the end.
pub(in crate::inventory) fn expand_percent(
    text: &str,
    mut value: impl FnMut(char) -> Option<String>,
) -> Result<String, Option<char>> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(token) => out.push_str(&value(token).ok_or(Some(token))?),
            None => return Err(None),
        }
    }
    Ok(out)
}

/// The machine's name as gethostname(2) gives it (`%l`).
fn local_host_name() -> Result<String, String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return Err("the local host name (`%l`, `%L`, `%C`) is unknown".into());
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec())
        .map_err(|_| "the local host name is not UTF-8".to_owned())
}

/// OpenSSH's `convtime`: `90`, `90s`, `1m30s`, `1h`, `2d`, `1w`, at most
/// `i32::MAX` seconds; `None` for anything else.
pub(super) fn parse_time(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut chars = text.chars().peekable();
    if text.is_empty() {
        return None;
    }
    while chars.peek().is_some() {
        let mut number: u64 = 0;
        let mut digits = 0;
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            chars.next();
            digits += 1;
            number = number.checked_mul(10)?.checked_add(u64::from(d))?;
        }
        if digits == 0 {
            return None;
        }
        let unit = match chars.next() {
            None => 1,
            Some('s' | 'S') => 1,
            Some('m' | 'M') => 60,
            Some('h' | 'H') => 3600,
            Some('d' | 'D') => 86_400,
            Some('w' | 'W') => 604_800,
            Some(_) => return None,
        };
        total = total.checked_add(number.checked_mul(unit)?)?;
        if total > i32::MAX as u64 {
            return None;
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unterminated_variable_is_an_error_as_for_ssh() {
        let tokens = Tokens {
            home: Some(Path::new("/home/op")),
            local_user: "op",
            host: "h",
            original: "h",
            port: 22,
            remote_user: "r",
            alias: "h",
        };
        let error = tokens.expand_path("${HOME/x").expect_err("unterminated");
        assert!(error.contains("without its"), "{error}");
        assert_eq!(
            tokens.expand_path("~/%h-%r-%%").as_deref(),
            Ok("/home/op/h-r-%")
        );
    }
}
