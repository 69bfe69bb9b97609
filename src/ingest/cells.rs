//! A table row's cells: the trimmed text of each, kept in one string (a row is two
//! allocations, not one per cell; a delivery of 500,000 rows has millions of cells).

/// A row's cells, held in one string (a row is two allocations, not one per cell).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cells {
    text: String,
    /// Where each cell ends in `text`.
    ends: Vec<usize>,
}

impl Cells {
    /// `width` empty cells.
    pub fn empty(width: usize) -> Self {
        Cells {
            text: String::new(),
            ends: vec![0; width],
        }
    }

    pub(super) fn with_capacity(bytes: usize, cells: usize) -> Self {
        Cells {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(cells),
        }
    }

    pub(super) fn push(&mut self, cell: &str) {
        self.text.push_str(cell);
        self.ends.push(self.text.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<&str> {
        let end = *self.ends.get(index)?;
        let start = index.checked_sub(1).map_or(0, |i| self.ends[i]);
        Some(&self.text[start..end])
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).map(|i| self.get(i).unwrap_or(""))
    }

    /// Whether every cell is empty.
    pub fn all_empty(&self) -> bool {
        self.text.is_empty()
    }
}

impl<S: AsRef<str>> FromIterator<S> for Cells {
    fn from_iter<I: IntoIterator<Item = S>>(cells: I) -> Self {
        let mut out = Cells::default();
        for cell in cells {
            out.push(cell.as_ref());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_read_back_as_pushed() {
        let cells: Cells = ["a", "", "ünï", " b"].into_iter().collect();
        assert_eq!(cells.len(), 4);
        assert_eq!(cells.iter().collect::<Vec<_>>(), ["a", "", "ünï", " b"]);
        assert_eq!(cells.get(2), Some("ünï"));
        assert_eq!(cells.get(4), None);
        assert!(!cells.all_empty());
        let empty = Cells::empty(3);
        assert_eq!((empty.len(), empty.get(2)), (3, Some("")));
        assert!(empty.all_empty() && !empty.is_empty());
        assert!(Cells::default().is_empty());
    }
}
