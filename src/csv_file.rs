//! Writing and reading CSV text as the program's files hold it (docs/rules.md §13.5, §13.6):
//! LF line endings, RFC 4180 quoting only where needed, and no formulas: a value that begins
//! with `=`, `+`, `-`, `@`, tab or carriage return gets a leading `'` unless it is a number.
//! The reports ([`crate::report::csv_out`]) and the state files ([`crate::state`]) both write
//! through here.

use std::borrow::Cow;
use std::path::Path;

use crate::error::{Error, Result};

/// Whether `s` is a plain number (an optional sign, digits, an optional fraction).
pub fn is_number(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    !body.is_empty()
        && body != "."
        && digits(int)
        && digits(frac)
        && !(int.is_empty() && frac.is_empty())
}

/// The value as written to a CSV file: formula-like text is prefixed with `'`.
pub fn escape(s: &str) -> Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) && !is_number(s) {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// A text written to a report with [`escape`], as it was before: the quote comes off only
/// where `escape` would have put it.
pub fn unescape_report(s: &str) -> String {
    match s.strip_prefix('\'') {
        Some(rest) if escape(rest) == s => rest.to_string(),
        _ => s.to_string(),
    }
}

/// The value as written to a state file: like [`escape`], and a value that itself begins with
/// `'` gets one more, so that [`unescape`] gives back exactly what was written.
pub fn escape_state(s: &str) -> Cow<'_, str> {
    if s.starts_with('\'') {
        Cow::Owned(format!("'{s}"))
    } else {
        escape(s)
    }
}

/// The value as read back from a state file written with [`escape_state`].
pub fn unescape(s: &str) -> String {
    s.strip_prefix('\'').unwrap_or(s).to_string()
}

/// Writes a CSV file with `header` and `rows`, every value passed through `escape`.
pub fn write(
    path: &Path,
    header: &[&str],
    rows: impl IntoIterator<Item = Vec<String>>,
    escape: fn(&str) -> Cow<'_, str>,
) -> Result<()> {
    let fail = |e: csv::Error| Error::write(path, std::io::Error::other(e.to_string()));
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_path(path)
        .map_err(fail)?;
    w.write_record(header.iter().map(|h| escape(h).into_owned()))
        .map_err(fail)?;
    for row in rows {
        w.write_record(row.iter().map(|v| escape(v).into_owned()))
            .map_err(fail)?;
    }
    w.flush().map_err(|e| Error::write(path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_unescaping_takes_off_only_the_quote_escape_added() {
        assert_eq!(unescape_report("'=cmd"), "=cmd");
        assert_eq!(unescape_report("'@x"), "@x");
        assert_eq!(unescape_report("'=P1"), "=P1");
        assert_eq!(unescape_report("'-5"), "'-5");
        assert_eq!(unescape_report("'plain"), "'plain");
        assert_eq!(unescape_report("plain"), "plain");
        assert_eq!(unescape_report("-5"), "-5");
        for s in ["=1+1", "@SUM", "-x", "+7a", "\tx", "plain", "-5", "'quoted"] {
            assert_eq!(unescape_report(&escape(s)), s);
        }
    }

    #[test]
    fn formula_like_text_is_prefixed_numbers_are_not() {
        for (raw, out) in [
            ("=1+2", "'=1+2"),
            ("+46 8 123", "'+46 8 123"),
            ("-x", "'-x"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("-5", "-5"),
            ("+1.25", "+1.25"),
            ("-", "'-"),
            ("plain", "plain"),
            ("", ""),
        ] {
            assert_eq!(escape(raw), out, "{raw:?}");
            assert_eq!(unescape(&escape_state(raw)), raw, "{raw:?}");
            let quoted = format!("'{raw}");
            assert_eq!(unescape(&escape_state(&quoted)), quoted, "{raw:?}");
        }
    }

    #[test]
    fn written_files_quote_only_where_needed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        write(
            &path,
            &["a", "b"],
            [
                vec!["x, y".to_string(), "=cmd".to_string()],
                vec!["say \"hi\"".into(), "-2".into()],
            ],
            escape,
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "a,b\n\"x, y\",'=cmd\n\"say \"\"hi\"\"\",-2\n"
        );
    }
}
