//! A length of time as people write it in a config: `90d`, `7y`, `36h`,
//! `1w 2d` (humantime's syntax; a year is 365.25 days).

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Span(pub Duration);

impl Span {
    pub fn days(n: u64) -> Span {
        Span(Duration::from_secs(n * 86_400))
    }
}

impl std::str::FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s.trim())
            .map(Span)
            .map_err(|e| format!("{s:?} is not a length of time ({e}); write e.g. 90d, 7y, 36h"))
    }
}

impl TryFrom<String> for Span {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Span> for String {
    fn from(s: Span) -> String {
        s.to_string()
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.0.as_secs();
        if secs > 0 && secs.is_multiple_of(86_400) {
            write!(f, "{}d", secs / 86_400)
        } else {
            write!(f, "{}", humantime::format_duration(self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_and_print_as_written() {
        assert_eq!("90d".parse::<Span>().unwrap(), Span::days(90));
        assert_eq!(Span::days(2555).to_string(), "2555d");
        assert_eq!("36h".parse::<Span>().unwrap().0.as_secs(), 36 * 3600);
        let err = "ninety days".parse::<Span>().unwrap_err();
        assert!(err.contains("ninety days"), "{err}");
    }
}
