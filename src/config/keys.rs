//! Naming program.toml's keys as a person finds them, and refusing the keys it does not know.
//!
//! Owns the ordinal and line of each `[[requirements]]` and `[[extensions]]` block (`the 2nd
//! [[requirements]] block, line 31`), the check that every table holds only known keys (an
//! unknown key anywhere is a configuration error naming it), and the `[watch]` table. See
//! docs/rules.md §2.4.

use toml::{Table, Value};

type Failure = (String, String);

/// `1st`, `2nd`, `3rd`, `4th`, … `11th`, `12th`, `13th`, `21st` …
pub fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// The blocks of one array of tables (`[[name]]`), named for messages.
#[derive(Clone, Debug, Default)]
pub struct Blocks {
    name: String,
    /// The line of each `[[name]]` header, when the file writes every block so.
    lines: Vec<usize>,
}

impl Blocks {
    /// Finds the `[[name]]` header lines of `text`. When the blocks are written another way
    /// (an inline array), `count` tells them apart from the headers found and no line is given.
    pub fn find(text: &str, name: &str, count: usize) -> Blocks {
        let lines: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, line)| is_header(line, name))
            .map(|(i, _)| i + 1)
            .collect();
        Blocks {
            name: name.to_string(),
            lines: if lines.len() == count {
                lines
            } else {
                Vec::new()
            },
        }
    }

    /// The line of block `index` (0-based) in the file, when known.
    pub fn line(&self, index: usize) -> Option<usize> {
        self.lines.get(index).copied()
    }

    /// `the 2nd [[requirements]] block, line 31`.
    pub fn name(&self, index: usize) -> String {
        let mut s = format!("the {} [[{}]] block", ordinal(index + 1), self.name);
        if let Some(line) = self.line(index) {
            s.push_str(&format!(", line {line}"));
        }
        s
    }

    /// A key of block `index`: `requirements[1].level (the 2nd [[requirements]] block, line 31)`.
    pub fn key(&self, index: usize, key: &str) -> String {
        let mut s = format!("{}[{index}]", self.name);
        if !key.is_empty() {
            s.push('.');
            s.push_str(key);
        }
        format!("{s} ({})", self.name(index))
    }
}

/// Whether `line` is the header `[[name]]` (spaces allowed inside, a comment after).
fn is_header(line: &str, name: &str) -> bool {
    let line = line.split('#').next().unwrap_or("");
    let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
    compact == format!("[[{name}]]") || compact == format!("[[\"{name}\"]]")
}

/// The top-level tables program.toml may hold.
pub const TOP_LEVEL: [&str; 6] = [
    "calendar",
    "kpi_categories",
    "markets",
    "requirements",
    "extensions",
    "watch",
];

/// Fails naming the first key of `table` that is not in `known` (`prefix.key`).
pub fn only_known(table: &Table, known: &[&str], prefix: &str) -> Result<(), Failure> {
    match table.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            Err((
                key,
                format!("unknown key (known here: {})", known.join(", ")),
            ))
        }
    }
}

/// How many months ahead the anniversary watch looks.
pub const DEFAULT_LEAD_MONTHS: u32 = 3;

/// `[watch]`: `lead_months`, a whole number from 0 to 12 (default 3).
pub fn parse_watch(value: Option<&Value>) -> Result<u32, Failure> {
    let table = match value {
        None => return Ok(DEFAULT_LEAD_MONTHS),
        Some(Value::Table(t)) => t,
        Some(_) => return Err(("watch".into(), "must be a table".into())),
    };
    only_known(table, &["lead_months"], "watch")?;
    match table.get("lead_months") {
        None => Ok(DEFAULT_LEAD_MONTHS),
        Some(Value::Integer(n)) if (0..=12).contains(n) => Ok(*n as u32),
        Some(other) => Err((
            "watch.lead_months".into(),
            format!("must be a whole number of months from 0 to 12 (is {other})"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_read_as_a_person_counts() {
        let got: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111]
            .into_iter()
            .map(ordinal)
            .collect();
        assert_eq!(
            got,
            [
                "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd",
                "101st", "111th"
            ]
        );
    }

    #[test]
    fn blocks_are_named_with_their_line() {
        let text =
            "[calendar]\n\n[[requirements]]\nlevel = \"silver\"\n\n [[ requirements ]] # b\n";
        let b = Blocks::find(text, "requirements", 2);
        assert_eq!(b.name(1), "the 2nd [[requirements]] block, line 6");
        assert_eq!(
            b.key(0, "level"),
            "requirements[0].level (the 1st [[requirements]] block, line 3)"
        );
        // Blocks written inline have no header line to point at.
        let inline = Blocks::find("requirements = [{level = \"gold\"}]", "requirements", 1);
        assert_eq!(inline.name(0), "the 1st [[requirements]] block");
    }

    #[test]
    fn watch_lead_months_is_0_to_12() {
        let watch = |text: &str| {
            let t: Table = text.parse().unwrap();
            parse_watch(t.get("watch"))
        };
        assert_eq!(watch(""), Ok(3));
        assert_eq!(watch("[watch]\nlead_months = 0"), Ok(0));
        assert_eq!(watch("[watch]\nlead_months = 12"), Ok(12));
        for bad in ["13", "-1", "2.5", "\"3\"", "true"] {
            let e = watch(&format!("[watch]\nlead_months = {bad}")).unwrap_err();
            assert_eq!(e.0, "watch.lead_months", "{bad}");
        }
        assert_eq!(
            watch("[watch]\nlead_month = 2").unwrap_err().0,
            "watch.lead_month"
        );
        assert_eq!(watch("watch = 3").unwrap_err().0, "watch");
    }
}
