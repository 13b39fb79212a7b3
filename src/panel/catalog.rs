//! What the destination's panel columns can hold (read from its
//! information_schema once per migration), and the check of a source row
//! against it before anything is written: a value the destination cannot
//! hold fails its object with the table, the column and the value named
//! (never a password's) and what to do, instead of a server error or,
//! worse, a silent change (a word the schema does not know, a value cut
//! short).

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};

use super::records::{is_secret, text, Fields};
use super::PanelError;

/// One column of the destination's panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    /// information_schema's DATA_TYPE (`varchar`, `enum`, `int`, ...).
    pub data_type: String,
    pub nullable: bool,
    /// Characters (or bytes, for blobs and texts) it holds at most.
    pub max_len: Option<u64>,
    /// The words of an ENUM.
    pub words: Vec<String>,
    pub unsigned: bool,
}

/// The destination's panel columns: table → column → definition.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tables: BTreeMap<String, BTreeMap<String, ColumnDef>>,
}

impl Catalog {
    pub async fn load(conn: &mut Conn) -> Result<Catalog, PanelError> {
        let rows: Vec<(String, String, String, String, String, Option<u64>)> = conn
            .query(
                "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, CHARACTER_MAXIMUM_LENGTH \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()",
            )
            .await
            .map_err(|source| PanelError::Destination {
                what: "reading its columns".into(),
                source,
            })?;
        let mut catalog = Catalog::default();
        for (table, column, data_type, column_type, nullable, max_len) in rows {
            catalog.tables.entry(table).or_default().insert(
                column.to_ascii_lowercase(),
                ColumnDef {
                    words: enum_words(&column_type),
                    unsigned: column_type.to_ascii_lowercase().contains("unsigned"),
                    data_type: data_type.to_ascii_lowercase(),
                    nullable: nullable.eq_ignore_ascii_case("YES"),
                    max_len,
                },
            );
        }
        Ok(catalog)
    }

    /// The destination's definition of a column, if it has it.
    pub fn column(&self, table: &str, column: &str) -> Option<&ColumnDef> {
        self.tables.get(table)?.get(&column.to_ascii_lowercase())
    }

    /// Checks a source row that is about to be written into `table` for
    /// `object` ("domain a.example"); references (`id`, `*_id`), which the
    /// deploy sets itself, are not checked. Columns the destination lacks
    /// are not written, so not checked either.
    pub fn check(&self, table: &str, row: &Fields, object: &str) -> Result<(), PanelError> {
        for (column, value) in row {
            if column == "id" || column.ends_with("_id") {
                continue;
            }
            let Some(def) = self.column(table, column) else {
                continue;
            };
            if let Some(problem) = problem(def, value, is_secret(table, column)) {
                return Err(PanelError::Value {
                    table: table.to_owned(),
                    column: column.clone(),
                    object: object.to_owned(),
                    problem,
                });
            }
        }
        Ok(())
    }
}

/// `enum('a','b')` → `[a, b]` (a quote inside a word is doubled).
fn enum_words(column_type: &str) -> Vec<String> {
    let Some(inner) = column_type
        .strip_prefix("enum(")
        .or_else(|| column_type.strip_prefix("ENUM("))
        .and_then(|r| r.strip_suffix(')'))
    else {
        return Vec::new();
    };
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, '\'') => quoted = true,
            (true, '\'') if chars.peek() == Some(&'\'') => {
                chars.next();
                current.push('\'');
            }
            (true, '\'') => {
                quoted = false;
                words.push(std::mem::take(&mut current));
            }
            (true, c) => current.push(c),
            (false, _) => {}
        }
    }
    words
}

/// What keeps `value` out of the column, in words that say what to do.
fn problem(def: &ColumnDef, value: &Value, secret: bool) -> Option<String> {
    let shown = |v: &str| {
        if secret {
            "the source's value (a password, not shown)".to_owned()
        } else {
            format!("the source's value {:?}", clip(v))
        }
    };
    if matches!(value, Value::NULL) {
        return (!def.nullable).then(|| {
            "the source has NULL, which this column of the destination does not take; give it a value on the source and migrate it again".to_owned()
        });
    }
    let text = text(Some(value)).unwrap_or_default();
    if def.data_type == "enum" {
        return (!def.words.contains(&text)).then(|| {
            format!(
                "{} is not one of the words the destination knows ({}); correct it on the source, or tell hostmig's developers about the word, and migrate it again",
                shown(&text),
                def.words.join(", ")
            )
        });
    }
    let integer = match def.data_type.as_str() {
        "tinyint" => Some(8),
        "smallint" => Some(16),
        "mediumint" => Some(24),
        "int" | "integer" => Some(32),
        "bigint" => Some(64),
        _ => None,
    };
    if let Some(bits) = integer {
        let (min, max) = if def.unsigned {
            (0i128, (1i128 << bits) - 1)
        } else {
            (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
        };
        let fits = match value {
            Value::Int(n) => (min..=max).contains(&i128::from(*n)),
            Value::UInt(n) => (min..=max).contains(&i128::from(*n)),
            _ => text
                .trim()
                .parse::<i128>()
                .is_ok_and(|n| (min..=max).contains(&n)),
        };
        return (!fits).then(|| {
            format!(
                "{} is not a whole number from {min} to {max}, which this column holds; correct it on the source and migrate it again",
                shown(&text)
            )
        });
    }
    let limit = def.max_len?;
    let length = match def.data_type.as_str() {
        "char" | "varchar" => text.chars().count() as u64,
        "tinytext" | "text" | "mediumtext" | "longtext" | "tinyblob" | "blob" | "mediumblob"
        | "longblob" | "binary" | "varbinary" => match value {
            Value::Bytes(b) => b.len() as u64,
            _ => text.len() as u64,
        },
        _ => return None,
    };
    (length > limit).then(|| {
        format!(
            "{} is {length} long, more than the {limit} this column of the destination holds; shorten it on the source and migrate it again",
            if secret {
                "the source's value (a password, not shown)".to_owned()
            } else {
                format!("the source's value {:?}…", clip(&text))
            }
        )
    })
}

/// At most 60 characters of a value, for a message.
fn clip(text: &str) -> String {
    text.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(data_type: &str, nullable: bool, max_len: Option<u64>, words: &[&str]) -> ColumnDef {
        ColumnDef {
            data_type: data_type.into(),
            nullable,
            max_len,
            words: words.iter().map(|w| w.to_string()).collect(),
            unsigned: data_type.starts_with("big"),
        }
    }

    #[test]
    fn enum_words_are_read_from_the_column_type() {
        assert_eq!(enum_words("enum('false','true')"), ["false", "true"]);
        assert_eq!(enum_words("enum('it''s','')"), ["it's", ""]);
        assert!(enum_words("varchar(255)").is_empty());
    }

    #[test]
    fn what_a_column_cannot_hold_is_named() {
        let words = def("enum", true, None, &["UNIXTIMESTAMP", "YYYYMMDDNN"]);
        assert_eq!(problem(&words, &"YYYYMMDDNN".into(), false), None);
        assert_eq!(problem(&words, &Value::NULL, false), None);
        let p = problem(&words, &"UNIXTIME".into(), false).expect("unknown word");
        assert!(
            p.starts_with("the source's value \"UNIXTIME\" is not one of the words the destination knows (UNIXTIMESTAMP, YYYYMMDDNN)"),
            "{p}"
        );
        // A word in another case is another word: never silently changed.
        assert!(problem(&words, &"yyyymmddnn".into(), false).is_some());
        let not_null = def("varchar", false, Some(10), &[]);
        assert!(problem(&not_null, &Value::NULL, false)
            .expect("null")
            .contains("NULL"));
        assert_eq!(problem(&not_null, &"ten chars!".into(), false), None);
        assert!(problem(&not_null, &"eleven char".into(), false)
            .expect("long")
            .contains("11 long, more than the 10"));
        // Characters, not bytes: é is one.
        assert_eq!(problem(&not_null, &"éééééééééé".into(), false), None);
        let secret = problem(&not_null, &"hunter2-hunter2".into(), true).expect("long");
        assert!(!secret.contains("hunter2"), "{secret}");
        let small = def("tinyint", true, None, &[]);
        assert_eq!(problem(&small, &Value::Int(-128), false), None);
        assert!(problem(&small, &Value::Int(128), false).is_some());
        assert!(problem(&small, &"12x".into(), false).is_some());
        let big = def("bigint", true, None, &[]);
        assert_eq!(problem(&big, &Value::UInt(u64::MAX), false), None);
        assert!(problem(&big, &Value::Int(-1), false).is_some());
    }
}
