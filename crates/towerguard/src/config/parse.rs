//! Reading a configuration file: every unknown key and every value of the wrong type at once.
//!
//! serde stops at the first mistake. To report them all, the file is read as a TOML tree
//! first (a syntax error ends it there, reported alone), then deserialized again and again:
//! after each mistake the value at fault is taken out of the tree (or, for a missing field,
//! the entry that lacks it) and the rest is read once more, until it reads or nothing more
//! can be taken out. The tenants' array is read one tenant at a time, so that taking one
//! out does not renumber the others.

use serde::de::DeserializeOwned;
use serde_path_to_error::{Path, Segment};
use toml::{Table, Value};

use super::errors::{ConfigErrors, FieldError};
use super::{Config, TenantConfig};

/// Mistakes looked for in one file, at most.
const MAX_MISTAKES: usize = 64;

/// `text` as a configuration, or every mistake of syntax, key and type it holds.
pub(crate) fn parse(text: &str) -> Result<Config, ConfigErrors> {
    let mut doc: Table = toml::from_str(text).map_err(|e| {
        ConfigErrors::one(FieldError::new(
            "",
            format!("not valid TOML: {}", e.message()),
        ))
    })?;
    let mut errors = ConfigErrors::default();
    let tenants = match doc.remove("tenants") {
        None => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.push(FieldError::new("tenants", "must be an array of tables"));
            Vec::new()
        }
    };
    let mut config: Option<Config> = read(doc, "", &mut errors);
    for (i, item) in tenants.into_iter().enumerate() {
        let tenant = read::<TenantConfig>(item, &format!("tenants[{i}]"), &mut errors);
        if let (Some(config), Some(tenant)) = (&mut config, tenant) {
            config.tenants.push(tenant);
        }
    }
    match config {
        Some(config) if errors.is_empty() => Ok(config),
        _ => Err(errors),
    }
}

/// Reads `tree` as a `T`, taking out each value at fault and recording its mistake under
/// `prefix`: `Some` once the rest reads.
fn read<T: DeserializeOwned>(
    tree: impl Into<Value>,
    prefix: &str,
    errors: &mut ConfigErrors,
) -> Option<T> {
    let mut tree: Value = tree.into();
    // fields taken out after their own mistake: their absence is no new one
    let mut taken: Vec<String> = Vec::new();
    for _ in 0..MAX_MISTAKES {
        let e = match serde_path_to_error::deserialize::<_, T>(tree.clone()) {
            Ok(value) => return Some(value),
            Err(e) => e,
        };
        let path = e.path().clone();
        let reason = e.into_inner().message().to_owned();
        let at = join(prefix, &path.to_string());
        let missing = missing_field(&reason).map(|field| join(&at, field));
        if !missing.as_ref().is_some_and(|m| taken.contains(m)) {
            errors.push(FieldError::new(at.clone(), reason));
        }
        if !take_out(&mut tree, &path) {
            return None;
        }
        taken.push(at);
    }
    None
}

/// `field` of a "missing field `field`" message.
fn missing_field(reason: &str) -> Option<&str> {
    reason.strip_prefix("missing field `")?.split('`').next()
}

/// Takes the value at `path` out of `tree`; an item of an array takes the whole array (so
/// that no other item is renumbered). False if nothing can be taken (the root).
fn take_out(tree: &mut Value, path: &Path) -> bool {
    let segments: Vec<&Segment> = path.iter().collect();
    // the last map key on the path: what is taken out, with everything under it
    let Some(last_key) = segments
        .iter()
        .rposition(|s| matches!(s, Segment::Map { .. }))
    else {
        return false;
    };
    let mut node = tree;
    for segment in &segments[..last_key] {
        node = match (segment, node) {
            (Segment::Map { key }, Value::Table(t)) => match t.get_mut(key.as_str()) {
                Some(next) => next,
                None => return false,
            },
            (Segment::Seq { index }, Value::Array(a)) => match a.get_mut(*index) {
                Some(next) => next,
                None => return false,
            },
            _ => return false,
        };
    }
    match (segments[last_key], node) {
        (Segment::Map { key }, Value::Table(t)) => t.remove(key.as_str()).is_some(),
        _ => false,
    }
}

/// `prefix.path`, either possibly empty (serde's path of the root is `.`).
fn join(prefix: &str, path: &str) -> String {
    let path = if path == "." { "" } else { path };
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
        (false, false) => format!("{prefix}.{path}"),
    }
}
