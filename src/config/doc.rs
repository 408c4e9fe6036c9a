//! Writing values into a `toml_edit` document that may come from a user's base file:
//! tables are created when missing, replaced values keep their comments, and a record of
//! what was assigned from where detects two inputs that disagree about one key.

use crate::error::InputError;
use std::collections::BTreeMap;
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, TableLike, Value};

/// How serious a rendering note is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteLevel {
    /// Worth knowing (e.g. an input that has no effect yet).
    Info,
    /// Probably a mistake in the input (e.g. an unknown key).
    Warn,
}

/// A message produced while rendering, logged by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Severity.
    pub level: NoteLevel,
    /// One line of text.
    pub message: String,
}

/// What to do when two inputs assign different values to one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Keep the first value and add a warning.
    KeepFirst,
    /// Refuse the input.
    Fail,
}

/// A document being rendered, with the notes and the record of assignments.
#[derive(Debug)]
pub struct Writer {
    /// The document.
    pub doc: DocumentMut,
    /// Notes for the log.
    pub notes: Vec<Note>,
    assigned: BTreeMap<String, (String, String)>,
    on_conflict: OnConflict,
}

/// The dotted name of a key, as shown to users: `master.rpc_port`, `cluster_id`.
pub fn dotted(path: &[&str], key: &str) -> String {
    let mut parts: Vec<&str> = path.to_vec();
    parts.push(key);
    parts.join(".")
}

impl Writer {
    /// Starts from a base document (empty for a fresh render).
    pub fn new(doc: DocumentMut, on_conflict: OnConflict) -> Self {
        Self {
            doc,
            notes: Vec::new(),
            assigned: BTreeMap::new(),
            on_conflict,
        }
    }

    /// Creates the given top-level sections, in this order, where missing, so a fresh
    /// file reads master, journal, worker, client, fuse, log.
    pub fn ensure_sections(&mut self, names: &[&str]) -> Result<(), InputError> {
        for name in names {
            table_mut(&mut self.doc, &[name])?;
        }
        Ok(())
    }

    /// Adds a note.
    pub fn note(&mut self, level: NoteLevel, message: impl Into<String>) {
        self.notes.push(Note {
            level,
            message: message.into(),
        });
    }

    /// Assigns a value that came from an input at `origin`. A second assignment of a
    /// different value to the same key is a conflict (see [`OnConflict`]); the same value
    /// again is fine.
    pub fn assign(
        &mut self,
        path: &[&str],
        key: &str,
        value: Value,
        origin: &str,
    ) -> Result<(), InputError> {
        let name = dotted(path, key);
        let shown = value_text(&value);
        if let Some((previous, previous_origin)) = self.assigned.get(&name) {
            if *previous == shown {
                return Ok(());
            }
            let what = format!(
                "{name} is set to {previous} by {previous_origin} and to {shown} by {origin}"
            );
            return match self.on_conflict {
                OnConflict::KeepFirst => {
                    self.note(NoteLevel::Warn, format!("{what}; keeping {previous}"));
                    Ok(())
                }
                OnConflict::Fail => Err(InputError::new(
                    what,
                    origin.to_string(),
                    "set the key once: remove one of the two options",
                )),
            };
        }
        self.assigned.insert(name, (shown, origin.to_string()));
        self.set(path, key, value)
    }

    /// Whether an input assigned this key.
    pub fn was_assigned(&self, path: &[&str], key: &str) -> bool {
        self.assigned.contains_key(&dotted(path, key))
    }

    /// Sets a value regardless of earlier assignments (derived, managed values).
    pub fn set(&mut self, path: &[&str], key: &str, value: Value) -> Result<(), InputError> {
        let table = table_mut(&mut self.doc, path)?;
        let mut value = value;
        if let Some(old) = table.get(key).and_then(Item::as_value) {
            // Keep a trailing comment such as `attr_timeout_ms = 1000  # kernel cache`.
            *value.decor_mut() = old.decor().clone();
        }
        table.insert(key, Item::Value(value));
        Ok(())
    }

    /// Sets a value only when the document has none (built-in defaults).
    pub fn default(&mut self, path: &[&str], key: &str, value: Value) -> Result<(), InputError> {
        if self.get(path, key).is_none() {
            self.set(path, key, value)?;
        }
        Ok(())
    }

    /// The item at `path.key`, if present.
    pub fn get(&self, path: &[&str], key: &str) -> Option<&Item> {
        let mut table: &dyn TableLike = self.doc.as_table();
        for part in path {
            table = table.get(part)?.as_table_like()?;
        }
        table.get(key).filter(|i| !i.is_none())
    }

    /// An integer at `path.key`, if present and an integer.
    pub fn get_int(&self, path: &[&str], key: &str) -> Option<i64> {
        self.get(path, key)?.as_integer()
    }

    /// A string at `path.key`, if present and a string.
    pub fn get_str(&self, path: &[&str], key: &str) -> Option<&str> {
        self.get(path, key)?.as_str()
    }

    /// Removes a key if present.
    pub fn remove(&mut self, path: &[&str], key: &str) {
        if let Ok(table) = table_mut(&mut self.doc, path) {
            table.remove(key);
        }
    }
}

/// The table at `path`, created (as `[a.b]` tables) when missing.
fn table_mut<'d>(
    doc: &'d mut DocumentMut,
    path: &[&str],
) -> Result<&'d mut dyn TableLike, InputError> {
    let mut table: &mut dyn TableLike = doc.as_table_mut();
    for (depth, part) in path.iter().enumerate() {
        if table.get(part).is_none_or(Item::is_none) {
            let mut t = Table::new();
            t.set_implicit(depth + 1 < path.len());
            table.insert(part, Item::Table(t));
        }
        let item = table
            .get_mut(part)
            .ok_or_else(|| not_a_table(&path[..=depth]))?;
        table = item
            .as_table_like_mut()
            .ok_or_else(|| not_a_table(&path[..=depth]))?;
    }
    Ok(table)
}

fn not_a_table(path: &[&str]) -> InputError {
    InputError::new(
        format!(
            "{} is a value, but the rendered config needs a table there",
            path.join(".")
        ),
        "the base config file",
        "make it a [section] in the base curvine-cluster.toml, or remove it",
    )
}

/// A value as shown in messages (TOML syntax, no decoration).
pub fn value_text(value: &Value) -> String {
    let mut v = value.clone();
    v.decor_mut().clear();
    v.to_string()
}

/// Lays an array out one element per line, as in Curvine's example configs.
fn one_per_line(array: &mut Array) {
    for value in array.iter_mut() {
        value.decor_mut().set_prefix("\n    ");
        value.decor_mut().set_suffix("");
    }
    array.set_trailing_comma(true);
    array.set_trailing("\n");
}

/// An array of inline tables, one per line.
pub fn table_array(entries: Vec<InlineTable>) -> Value {
    let mut array = Array::new();
    for entry in entries {
        array.push(entry);
    }
    one_per_line(&mut array);
    Value::Array(array)
}

/// An array of strings, one per line when there are several.
pub fn string_array(items: &[String]) -> Value {
    let mut array: Array = items.iter().map(String::as_str).collect();
    if array.len() > 1 {
        one_per_line(&mut array);
    }
    Value::Array(array)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_keeps_comments_and_unknown_keys() {
        let base: DocumentMut = "# top\nmine = 1\n[fuse]\nattr_timeout_ms = 1000 # kernel cache\n"
            .parse()
            .unwrap();
        let mut w = Writer::new(base, OnConflict::Fail);
        w.set(&["fuse"], "attr_timeout_ms", Value::from(5)).unwrap();
        w.set(&["master", "log"], "level", Value::from("info"))
            .unwrap();
        let text = w.doc.to_string();
        assert!(text.contains("# top\nmine = 1"), "{text}");
        assert!(
            text.contains("attr_timeout_ms = 5 # kernel cache"),
            "{text}"
        );
        assert!(text.contains("[master.log]"), "{text}");
    }

    #[test]
    fn conflicts() {
        let mut w = Writer::new(DocumentMut::new(), OnConflict::Fail);
        w.assign(&[], "a", Value::from(1), "x").unwrap();
        w.assign(&[], "a", Value::from(1), "y").unwrap();
        let e = w.assign(&[], "a", Value::from(2), "z").unwrap_err();
        assert!(e.what.contains("set to 1 by x and to 2 by z"), "{e}");

        let mut w = Writer::new(DocumentMut::new(), OnConflict::KeepFirst);
        w.assign(&[], "a", Value::from(1), "x").unwrap();
        w.assign(&[], "a", Value::from(2), "z").unwrap();
        assert_eq!(w.get_int(&[], "a"), Some(1));
        assert_eq!(w.notes.len(), 1);
    }

    #[test]
    fn a_value_where_a_table_is_needed_is_an_error() {
        let base: DocumentMut = "master = 5\n".parse().unwrap();
        let mut w = Writer::new(base, OnConflict::Fail);
        assert!(w.set(&["master"], "rpc_port", Value::from(1)).is_err());
    }

    #[test]
    fn inline_arrays_parse_back() {
        let mut t = InlineTable::new();
        t.insert("hostname", Value::from("h"));
        t.insert("port", Value::from(1));
        let mut w = Writer::new(DocumentMut::new(), OnConflict::Fail);
        w.set(&["client"], "master_addrs", table_array(vec![t.clone(), t]))
            .unwrap();
        let text = w.doc.to_string();
        let back: DocumentMut = text.parse().unwrap();
        assert_eq!(
            back["client"]["master_addrs"].as_array().map(|a| a.len()),
            Some(2)
        );
    }
}
