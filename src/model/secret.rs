//! A string that must never be printed, logged, serialized or recorded.

use std::fmt;

/// A password or key password. `Debug` and `Display` print `(sensitive)`;
/// it has no `Serialize`, so it cannot reach the state store or a plan file
/// by accident. Read it with [`Secret::expose`] at the one place that hands
/// it to a connection.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself; call only where a connection is opened.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(sensitive)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(sensitive)")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn never_prints_its_value() {
        let s = super::Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "(sensitive) (sensitive)");
        assert_eq!(s.expose(), "hunter2");
    }
}
