/// Which piece of a rule a span points into: the rule's `exp`, or the file-level `expPrefix`,
/// `expSuffix` or `filter` text (prefix/suffix nodes are grafted into every rule's tree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Part {
    /// The rule's own `exp` text.
    #[default]
    Exp,
    /// The file's `expPrefix`.
    Prefix,
    /// The file's `expSuffix`.
    Suffix,
    /// The file's `filter`.
    Filter,
}

/// A byte range in one piece of source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// The text the offsets refer to.
    pub part: Part,
}

impl Span {
    pub(crate) fn new(start: usize, end: usize, part: Part) -> Span {
        Span { start, end, part }
    }

    pub(crate) fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
            part: self.part,
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let mut line = 1;
    let mut col = 1;
    for (i, c) in text.char_indices() {
        if i >= offset {
            break;
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
