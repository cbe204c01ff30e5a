//! Operators and their tokens. The operators file holds one operator per
//! line, `NAME SHA256-OF-TOKEN` (hex; `#` starts a comment): the console
//! never holds a token itself, only its digest, so the file leaks nothing
//! that acts. `cairn console token NAME` makes a token and its line.

use sha2::{Digest, Sha256};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum OperatorsError {
    #[error("console operators file {path}: {message}")]
    File { path: String, message: String },
    #[error("console operators file {path}, line {line}: {message}")]
    Line {
        path: String,
        line: usize,
        message: String,
    },
}

/// Who may act, by the digest of their token.
#[derive(Debug, Clone, Default)]
pub struct Operators(Vec<(String, [u8; 32])>);

impl Operators {
    /// No operators: every action is refused.
    pub fn none() -> Self {
        Operators(Vec::new())
    }

    pub fn load(path: &Path) -> Result<Self, OperatorsError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| OperatorsError::File {
            path: p.clone(),
            message: e.to_string(),
        })?;
        Self::parse(&text).map_err(|(line, message)| OperatorsError::Line {
            path: p,
            line,
            message,
        })
    }

    /// Parses the file's text; the error is a line number and why.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(name), Some(digest), None) = (parts.next(), parts.next(), parts.next())
            else {
                return Err((i + 1, "expected `NAME SHA256-OF-TOKEN`".into()));
            };
            let bytes = hex::decode(digest)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or((
                    i + 1,
                    format!("{digest:?} is not a SHA-256 in hex (64 digits)"),
                ))?;
            out.push((name.to_string(), bytes));
        }
        Ok(Operators(out))
    }

    /// The operator whose token this is.
    pub fn who(&self, token: &str) -> Option<&str> {
        let d: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Every entry compared in full, whatever matches: no timing hint.
        let mut found = None;
        for (name, want) in &self.0 {
            let diff = want.iter().zip(d.iter()).fold(0u8, |a, (x, y)| a | (x ^ y));
            if diff == 0 && found.is_none() {
                found = Some(name.as_str());
            }
        }
        found
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A new random token and the operators-file line for it.
pub fn new_token(name: &str) -> (String, String) {
    // ThreadRng: a CSPRNG seeded by the OS. A token is a bearer secret.
    let token: String = hex::encode(rand::random::<[u8; 24]>());
    let line = format!("{name} {}", hex::encode(Sha256::digest(token.as_bytes())));
    (token, line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_operator_and_nothing_else_does() {
        let (token, line) = new_token("alice");
        let ops = Operators::parse(&format!("# operators\n{line}  # on call\n\n")).unwrap();
        assert_eq!(ops.who(&token), Some("alice"));
        assert_eq!(ops.who("not the token"), None);
        assert_eq!(ops.who(""), None);
        assert_ne!(new_token("alice").0, token, "tokens are random");
    }

    #[test]
    fn bad_lines_are_named() {
        assert_eq!(Operators::parse("alice").unwrap_err().0, 1);
        let e = Operators::parse("\nbob abc").unwrap_err();
        assert_eq!(e.0, 2);
        assert!(e.1.contains("not a SHA-256"), "{}", e.1);
        assert!(Operators::parse("a b c").is_err());
    }
}
