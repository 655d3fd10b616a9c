//! `bramble routes announce|withdraw --file PATH`: one prefix a line, blank lines and `#`
//! comments ignored. Every line is checked before anything contacts the agent.

use std::fmt;
use std::path::Path;

use bgp::wire::Prefix;

use crate::cli::parse_prefix;

/// Bad lines reported before the rest are only counted.
const MAX_REPORTED: usize = 10;

/// Why a prefix file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PrefixFileError {
    /// The file could not be read (or is not UTF-8). Displays as `PATH: reason`.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file holds no prefix at all.
    #[error("{path}: no prefixes in the file")]
    Empty { path: String },
    /// Some lines are not prefixes; one `PATH:LINE: reason` per line.
    #[error("{}", DisplayLines(.0))]
    BadLines(Vec<BadLine>),
}

/// One line of the file that is not a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub path: String,
    /// 1-based.
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path, self.line, self.reason)
    }
}

struct DisplayLines<'a>(&'a [BadLine]);

impl fmt::Display for DisplayLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, bad) in self.0.iter().take(MAX_REPORTED).enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{bad}")?;
        }
        if let (Some(first), Some(more)) = (self.0.first(), self.0.len().checked_sub(MAX_REPORTED))
        {
            if more > 0 {
                write!(f, "\n{}: {more} more bad lines", first.path)?;
            }
        }
        Ok(())
    }
}

/// Reads the prefixes of the file at `path`, in file order.
pub fn read(path: &Path) -> Result<Vec<Prefix>, PrefixFileError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| PrefixFileError::Io {
        path: name.clone(),
        source,
    })?;
    parse(&text, &name)
}

/// The prefixes of `text`; `name` is only used in error messages.
pub fn parse(text: &str, name: &str) -> Result<Vec<Prefix>, PrefixFileError> {
    let mut prefixes = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let content = line
            .split_once('#')
            .map_or(line, |(before, _)| before)
            .trim();
        if content.is_empty() {
            continue;
        }
        let reason = if content.split_whitespace().nth(1).is_some() {
            // "10.0.0.0/24 10.0.1.0/24" or "10.0.0.0/24 via x": say so rather than
            // complaining about the whole line not being a prefix.
            Err(format!("{content:?}: one prefix per line"))
        } else {
            parse_prefix(content)
        };
        match reason {
            Ok(p) => prefixes.push(p),
            Err(reason) => bad.push(BadLine {
                path: name.to_string(),
                line: i + 1,
                reason,
            }),
        }
    }
    if !bad.is_empty() {
        return Err(PrefixFileError::BadLines(bad));
    }
    if prefixes.is_empty() {
        return Err(PrefixFileError::Empty {
            path: name.to_string(),
        });
    }
    Ok(prefixes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let text =
            "# pods of node a\n10.244.1.0/26\n\n   \n  10.244.2.0/26   # rack 2\r\n2001:db8::/64\n";
        let got: Vec<String> = parse(text, "p.txt")
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, ["10.244.1.0/26", "10.244.2.0/26", "2001:db8::/64"]);
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let e = parse(
            "10.0.0.0/8\n10.0.0.1/24\nbanana # fruit\n10.1.0.0/16 10.2.0.0/16\n",
            "p.txt",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "p.txt:2: 10.0.0.1/24 has host bits set (did you mean 10.0.0.0/24?)\n\
             p.txt:3: \"banana\" is not a prefix (expected ADDR/LEN, e.g. 10.1.0.0/24)\n\
             p.txt:4: \"10.1.0.0/16 10.2.0.0/16\": one prefix per line"
        );
    }

    #[test]
    fn many_bad_lines_are_summarised() {
        let text = "x\n".repeat(25);
        let e = parse(&text, "p.txt").unwrap_err();
        let lines: Vec<String> = e.to_string().lines().map(String::from).collect();
        assert_eq!(lines.len(), MAX_REPORTED + 1);
        assert!(lines[0].starts_with("p.txt:1: "));
        assert_eq!(lines[MAX_REPORTED], "p.txt: 15 more bad lines");
    }

    #[test]
    fn a_file_without_prefixes_is_an_error() {
        let e = parse("# nothing\n\n", "p.txt").unwrap_err();
        assert_eq!(e.to_string(), "p.txt: no prefixes in the file");
    }
}
