//! A text table of benchmark figures: left-aligned first cells, right-aligned numbers, notes,
//! collected while a benchmark runs and printed at its end.

use std::io::Write;

/// Rows of left-aligned first cells and right-aligned numbers, printed at the end.
#[derive(Debug, Default)]
pub struct Table {
    /// Width of each column (10 past the last given).
    widths: Vec<usize>,
    lines: Vec<Line>,
}

#[derive(Debug)]
enum Line {
    Head(Vec<String>),
    Row(Vec<String>),
    Note(String),
}

impl Table {
    /// An empty table whose columns are `widths` characters wide.
    pub fn new(widths: &[usize]) -> Table {
        Table {
            widths: widths.to_vec(),
            lines: Vec::new(),
        }
    }

    /// Starts a section: a blank line, the column titles, a rule.
    pub fn head(&mut self, cells: &[&str]) {
        let cells = cells.iter().map(|c| (*c).to_owned()).collect();
        self.lines.push(Line::Head(cells));
    }

    /// A row of cells.
    pub fn row(&mut self, cells: &[String]) {
        self.lines.push(Line::Row(cells.to_vec()));
    }

    /// A line of text, indented.
    pub fn note(&mut self, text: String) {
        self.lines.push(Line::Note(text));
    }

    /// Prints the table to stdout.
    pub fn print(&self) {
        let mut out = std::io::stdout().lock();
        for line in &self.lines {
            let text = match line {
                Line::Head(cells) | Line::Row(cells) => {
                    let mut s = String::new();
                    for (i, c) in cells.iter().enumerate() {
                        let w = self.widths.get(i).copied().unwrap_or(10);
                        if i == 0 {
                            s.push_str(&format!("{c:<w$}"));
                        } else {
                            s.push_str(&format!("{c:>w$}"));
                        }
                    }
                    if matches!(line, Line::Head(_)) {
                        s = format!("\n{s}\n{}", "-".repeat(s.len()));
                    }
                    s
                }
                Line::Note(n) => format!("  {n}"),
            };
            let _ = writeln!(out, "{}", text.trim_end());
        }
    }
}
