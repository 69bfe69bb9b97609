//! Naming program.toml's keys as a person finds them, and refusing the keys it does not know.
//!
//! Owns the ordinal and line of each `[[requirements]]` and `[[extensions]]` block (`the 2nd
//! [[requirements]] block, line 31`) and the name of the key an error's path points at. See
//! docs/rules.md §2.4.

use serde_path_to_error::{Path, Segment};

/// A configuration error: the key named for people, and what is wrong with it.
pub type Failure = (String, String);

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

/// Names the key at `path` of a serde error: `calendar.refresh_dya`, or for a key inside a
/// block of `blocks`, `requirements[1].level (the 2nd [[requirements]] block, line 31)`.
pub fn name_path(path: &Path, blocks: &[&Blocks]) -> String {
    let segments: Vec<&Segment> = path.iter().collect();
    if let [Segment::Map { key }, Segment::Seq { index }, rest @ ..] = segments.as_slice() {
        if let Some(b) = blocks.iter().find(|b| &b.name == key) {
            return b.key(*index, &join(rest));
        }
    }
    match join(&segments) {
        s if s.is_empty() => "(file)".into(),
        s => s,
    }
}

/// `kpi.courseware`, `exclude_competencies[1]`.
fn join(segments: &[&Segment]) -> String {
    let mut s = String::new();
    for segment in segments {
        if !matches!(segment, Segment::Seq { .. }) && !s.is_empty() {
            s.push('.');
        }
        s.push_str(&segment.to_string());
    }
    s
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
}
