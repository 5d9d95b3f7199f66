//! The embedded migration files and how a file is cut into statements.

use sha2::{Digest, Sha256};

/// One schema migration: `sql/migrations/NNNN_name.sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// `NNNN` of the file name; applied in increasing order.
    pub version: u32,
    /// `name` of the file name.
    pub name: &'static str,
    /// The file's text: statements separated by `;`.
    pub sql: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// Every migration, in version order (listed from `sql/migrations` at build
/// time, so a new file cannot be left out).
pub const MIGRATIONS: &[Migration] = EMBEDDED_MIGRATIONS;

impl Migration {
    /// SHA-256 of the text (hex), with CRLF read as LF so a checkout's line
    /// endings do not count as an edit.
    ///
    /// ```
    /// let m = livepulse_sql::Migration { version: 1, name: "x", sql: "SELECT 1;\r\n" };
    /// let n = livepulse_sql::Migration { sql: "SELECT 1;\n", ..m };
    /// assert_eq!(m.checksum(), n.checksum());
    /// assert_eq!(m.checksum().len(), 64);
    /// ```
    pub fn checksum(&self) -> String {
        let digest = Sha256::digest(self.sql.replace("\r\n", "\n").as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The statements, in order, without empty or comment-only pieces.
    ///
    /// ```
    /// let m = livepulse_sql::Migration {
    ///     version: 1,
    ///     name: "x",
    ///     sql: "-- a; comment\nCREATE TABLE a (s String DEFAULT ';') ENGINE = Memory;\n\nSELECT 1;\n-- end\n",
    /// };
    /// assert_eq!(m.statements().len(), 2);
    /// ```
    pub fn statements(&self) -> Vec<&'static str> {
        split_statements(self.sql)
    }

    /// `NNNN_name`, as the file is called.
    pub fn file_stem(&self) -> String {
        format!("{:04}_{}", self.version, self.name)
    }
}

/// The (table, column) of a statement `ALTER TABLE t ADD COLUMN c ...`
/// (one column): the migrator runs it only when the column is missing, as
/// ClickHouse 18.16 has no `ADD COLUMN IF NOT EXISTS`.
///
/// ```
/// use livepulse_sql::added_column;
///
/// assert_eq!(added_column("ALTER TABLE events ADD COLUMN x Nullable(UInt32)"), Some(("events", "x")));
/// assert_eq!(added_column("CREATE TABLE IF NOT EXISTS t (a UInt8) ENGINE = Log"), None);
/// ```
pub fn added_column(statement: &str) -> Option<(&str, &str)> {
    let mut words = statement
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .flat_map(str::split_whitespace);
    let head: Vec<&str> = words.by_ref().take(6).collect();
    let one_column = !words.any(|w| w.eq_ignore_ascii_case("ADD"));
    match head.as_slice() {
        ["ALTER", "TABLE", table, "ADD", "COLUMN", column] if one_column => Some((table, column)),
        _ => None,
    }
}

/// Splits on `;` outside quotes and comments. ClickHouse's HTTP interface
/// takes one statement per request, and a plain `split(';')` would cut a
/// string literal or a comment that contains one.
fn split_statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let mut start = 0;
    let mut has_code = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |n| i + 2 + n + 2);
                continue;
            }
            quote @ (b'\'' | b'"' | b'`') => {
                has_code = true;
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    // A backslash escapes the next byte; a doubled quote ends and reopens.
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b';' => {
                if has_code {
                    statements.push(sql[start..i].trim());
                }
                start = i + 1;
                has_code = false;
            }
            c if !c.is_ascii_whitespace() => has_code = true,
            _ => {}
        }
        i += 1;
    }
    if has_code {
        statements.push(sql[start..].trim());
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_outside_quotes_and_comments() {
        let sql = "/* a; b */ CREATE TABLE t (a String DEFAULT 'x;\\'y', `b;` UInt8) ENGINE = Memory;\n\
                   -- c; d\n  SELECT 'it''s;' ; ;\n-- trailing; comment\n";
        assert_eq!(
            split_statements(sql),
            vec![
                "/* a; b */ CREATE TABLE t (a String DEFAULT 'x;\\'y', `b;` UInt8) ENGINE = Memory",
                "-- c; d\n  SELECT 'it''s;'",
            ]
        );
        assert_eq!(split_statements("SELECT 1"), vec!["SELECT 1"]);
        assert!(split_statements("-- nothing;\n/* here; */\n;").is_empty());
    }

    #[test]
    fn embedded_list_matches_the_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        files.sort();
        let embedded: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{}.sql", m.file_stem()))
            .collect();
        assert_eq!(embedded, files);
        for m in MIGRATIONS {
            assert_eq!(
                m.sql,
                std::fs::read_to_string(dir.join(format!("{}.sql", m.file_stem()))).unwrap()
            );
        }
    }

    /// ClickHouse has no transactional DDL: a migration that fails half-way
    /// is re-run from its first statement, so every statement must be
    /// harmless to repeat.
    #[test]
    fn every_statement_is_repeatable() {
        for m in MIGRATIONS {
            let statements = m.statements();
            assert!(!statements.is_empty(), "{} is empty", m.file_stem());
            for statement in statements {
                let code: String = statement
                    .lines()
                    .filter(|line| !line.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join(" ");
                let words: Vec<&str> = code.split_whitespace().take(5).collect();
                assert!(
                    words.windows(3).any(|w| w == ["IF", "NOT", "EXISTS"])
                        || added_column(statement).is_some(),
                    "{}: `{}` is neither IF NOT EXISTS nor one added column",
                    m.file_stem(),
                    words.join(" ")
                );
            }
        }
    }
}
