//! Reading Fluid's runtime config JSON with errors that name the file and JSON path.
//!
//! [`read_text`] is the only I/O here; [`parse`] and the [`Json`] accessors are pure.
//! Every accessor that finds the wrong type returns an [`InputError`] such as
//! `expected a whole number, got a string (file /etc/fluid/config/runtime.json, JSON path
//! master.replicas): ...`.

use crate::error::InputError;
use serde_json::Value;
use std::path::Path;

/// Reads the config file; a missing or unreadable file is an input error.
pub fn read_text(path: &Path, what: &str) -> Result<String, InputError> {
    std::fs::read_to_string(path).map_err(|e| {
        let fix = if e.kind() == std::io::ErrorKind::NotFound {
            format!("Fluid mounts the {what} from its ConfigMap; check that the pod mounts it, or set FLUID_RUNTIME_CONFIG_PATH to where it is")
        } else {
            "make the file readable by this container".to_string()
        };
        InputError::new(format!("cannot read the {what}: {e}"), format!("file {}", path.display()), fix)
    })
}

/// Parses the text into a JSON object. With `unwrap_string`, a JSON string whose content
/// is a JSON object is accepted (one level); otherwise it is an error.
pub fn parse(file: &str, text: &str, unwrap_string: bool) -> Result<Value, InputError> {
    let location = format!("file {file}");
    if text.trim().is_empty() {
        return Err(InputError::new(
            "the config file is empty",
            location,
            "Fluid writes a JSON object here; recreate the runtime's ConfigMap (or Secret) so it holds the runtime config",
        ));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        InputError::new(
            format!("invalid JSON: {e}"),
            location.clone(),
            "the file must hold one JSON object as Fluid writes it; fix or recreate the ConfigMap",
        )
    })?;
    let value = match value {
        Value::String(inner) if unwrap_string => {
            let inner_value: Value = serde_json::from_str(&inner).map_err(|e| {
                InputError::new(
                    format!("invalid JSON inside the JSON string: {e}"),
                    location.clone(),
                    "write the runtime config as a plain JSON object",
                )
            })?;
            inner_value
        }
        Value::String(_) => return Err(InputError::new(
            "the config must be a JSON object, got a JSON string",
            location,
            "write the object itself, not a string holding it (Fluid never writes a string here)",
        )),
        other => other,
    };
    if !value.is_object() {
        return Err(InputError::new(
            format!(
                "the config must be a JSON object, got {}",
                type_name(&value)
            ),
            location,
            "write the runtime config as one JSON object",
        ));
    }
    Ok(value)
}

/// The JSON type name used in messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON value together with where it is (file and JSON path).
#[derive(Debug, Clone)]
pub struct Json<'a> {
    value: &'a Value,
    file: &'a str,
    path: String,
}

/// A child node; the same type, named for readability at call sites.
pub type Located<'a> = Json<'a>;

impl<'a> Json<'a> {
    /// The root of a parsed document.
    pub fn root(file: &'a str, value: &'a Value) -> Self {
        Json {
            value,
            file,
            path: String::new(),
        }
    }

    /// This node (call sites read `child.node().str()`).
    pub fn node(&self) -> &Self {
        self
    }

    /// The raw value.
    pub fn value(&self) -> &'a Value {
        self.value
    }

    /// `file F, JSON path P`, for error messages.
    pub fn location(&self) -> String {
        if self.path.is_empty() {
            format!("file {}", self.file)
        } else {
            format!("file {}, JSON path {}", self.file, self.path)
        }
    }

    /// Builds an error at this node.
    pub fn error(&self, what: impl Into<String>, fix: impl Into<String>) -> InputError {
        InputError::new(what, self.location(), fix)
    }

    /// The JSON path of a child key.
    pub fn child_path(&self, key: &str) -> String {
        let simple = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        match (self.path.is_empty(), simple) {
            (true, true) => key.to_string(),
            (false, true) => format!("{}.{key}", self.path),
            (_, false) => format!("{}[{key:?}]", self.path),
        }
    }

    /// The child at `key` when this is an object holding a non-null value there.
    pub fn get(&self, key: &str) -> Option<Located<'a>> {
        let value = self.value.as_object()?.get(key)?;
        if value.is_null() {
            return None;
        }
        Some(Json {
            value,
            file: self.file,
            path: self.child_path(key),
        })
    }

    /// The elements of an array.
    pub fn items(&self) -> Result<Vec<Located<'a>>, InputError> {
        let arr = self
            .value
            .as_array()
            .ok_or_else(|| self.wrong_type("an array"))?;
        Ok(arr
            .iter()
            .enumerate()
            .map(|(i, value)| Json {
                value,
                file: self.file,
                path: format!("{}[{i}]", self.path),
            })
            .collect())
    }

    /// Requires an object.
    pub fn require_object(&self) -> Result<(), InputError> {
        if self.value.is_object() {
            Ok(())
        } else {
            Err(self.wrong_type("an object"))
        }
    }

    /// A string value.
    pub fn str(&self) -> Result<&'a str, InputError> {
        self.value
            .as_str()
            .ok_or_else(|| self.wrong_type("a string"))
    }

    /// A non-negative whole number that fits in 32 bits (Fluid's int32 replicas).
    pub fn count(&self) -> Result<u32, InputError> {
        self.value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| self.wrong_type("a whole number from 0 to 4294967295"))
    }

    /// A map of option strings. Fluid writes strings; numbers and booleans are accepted
    /// as their text. Keys come back sorted.
    pub fn string_map(&self) -> Result<Vec<(String, String, String)>, InputError> {
        let map = self
            .value
            .as_object()
            .ok_or_else(|| self.wrong_type("an object of strings"))?;
        let mut out = Vec::with_capacity(map.len());
        for (key, value) in map {
            let path = self.child_path(key);
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                Value::Null => continue,
                other => {
                    return Err(InputError::new(
                        format!("expected a string, got {}", type_name(other)),
                        format!("file {}, JSON path {path}", self.file),
                        "option values are strings, e.g. \"64\" or \"true\"",
                    ))
                }
            };
            out.push((key.clone(), text, path));
        }
        out.sort();
        Ok(out)
    }

    fn wrong_type(&self, expected: &str) -> InputError {
        self.error(
            format!("expected {expected}, got {}", type_name(self.value)),
            "Fluid writes this field with that type; fix the value in the runtime config",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_invalid_text() {
        assert!(parse("f", "  \n", true).unwrap_err().what.contains("empty"));
        let e = parse("f", "{nope", true).unwrap_err();
        assert!(e.what.starts_with("invalid JSON"), "{e}");
        assert_eq!(e.location, "file f");
        assert!(parse("f", "[1]", true)
            .unwrap_err()
            .what
            .contains("an array"));
    }

    #[test]
    fn string_wrapped_objects() {
        let wrapped = r#""{\"a\":1}""#;
        assert_eq!(parse("f", wrapped, true).unwrap()["a"], 1);
        assert!(parse("f", wrapped, false)
            .unwrap_err()
            .what
            .contains("JSON string"));
        assert!(parse("f", r#""[1]""#, true).is_err());
        assert!(parse("f", r#""""#, true).is_err());
    }

    #[test]
    fn paths_in_errors() {
        let v: Value =
            serde_json::from_str(r#"{"master":{"replicas":"3","options":{"a b":[1]}}}"#).unwrap();
        let root = Json::root("rt.json", &v);
        let master = root.get("master").unwrap();
        let replicas = master.node().get("replicas").unwrap();
        let e = replicas.node().count().unwrap_err();
        assert_eq!(e.location, "file rt.json, JSON path master.replicas");
        let options = master.node().get("options").unwrap();
        let e = options.node().string_map().unwrap_err();
        assert_eq!(
            e.location,
            "file rt.json, JSON path master.options[\"a b\"]"
        );
    }
}
