//! Validated value types shared by several services: gender, interests, age.

use serde::{Deserialize, Serialize};
use time::Date;

/// Most interests a profile or a queue ticket may carry.
pub const MAX_INTERESTS: usize = 20;
/// Longest interest tag, in characters.
pub const MAX_INTEREST_CHARS: usize = 32;
/// Youngest age a user may have or ask for.
pub const MIN_AGE: u8 = 18;
/// Oldest age a user may ask for.
pub const MAX_AGE: u8 = 120;
/// Longest step between two age widenings a user may ask for (one day).
pub const MAX_WIDEN_EVERY_SECS: u32 = 86_400;
/// Longest wait before required interests fall back to preferred (one week).
pub const MAX_FALLBACK_AFTER_SECS: u32 = 7 * 86_400;

/// A user's gender as shown to others and used for matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    /// Male.
    Male,
    /// Female.
    Female,
    /// Non-binary or another gender.
    Other,
}

impl Gender {
    /// Every gender, in a stable order.
    pub const ALL: [Gender; 3] = [Gender::Male, Gender::Female, Gender::Other];

    /// The `snake_case` name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Male => "male",
            Gender::Female => "female",
            Gender::Other => "other",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Gender> {
        match s {
            "male" => Some(Gender::Male),
            "female" => Some(Gender::Female),
            "other" => Some(Gender::Other),
            _ => None,
        }
    }
}

/// Why an interest list was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterestError {
    /// More than [`MAX_INTERESTS`] distinct tags.
    #[error("at most {MAX_INTERESTS} interests are allowed")]
    TooMany,
    /// A tag empty after trimming.
    #[error("an interest must not be empty")]
    Empty,
    /// A tag longer than [`MAX_INTEREST_CHARS`].
    #[error("an interest must be at most {MAX_INTEREST_CHARS} characters")]
    TooLong,
    /// A tag with a control or invisible character.
    #[error("an interest must not contain control or invisible characters")]
    ControlCharacter,
}

impl InterestError {
    /// The machine-readable error code.
    pub fn code(&self) -> crate::error::ErrorCode {
        use crate::error::ErrorCode;
        match self {
            InterestError::TooMany => ErrorCode::TooManyInterests,
            InterestError::Empty | InterestError::TooLong | InterestError::ControlCharacter => {
                ErrorCode::InvalidInterest
            }
        }
    }
}

/// One normalised interest tag: trimmed, lower-case, 1 to 32 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Interest(String);

impl Interest {
    /// Normalises and validates one tag.
    pub fn parse(raw: &str) -> Result<Interest, InterestError> {
        let tag = raw.trim().to_lowercase();
        if tag.is_empty() {
            return Err(InterestError::Empty);
        }
        if tag.chars().count() > MAX_INTEREST_CHARS {
            return Err(InterestError::TooLong);
        }
        // Invisible and direction-changing characters would make look-alike tags that
        // never match each other.
        if tag
            .chars()
            .any(|c| c.is_control() || is_invisible_or_bidi(c))
        {
            return Err(InterestError::ControlCharacter);
        }
        Ok(Interest(tag))
    }

    /// The tag text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Normalises a list of interest tags: each trimmed and lower-cased, duplicates removed
/// (first occurrence kept), at most [`MAX_INTERESTS`] remaining.
pub fn normalize_interests<S: AsRef<str>>(raw: &[S]) -> Result<Vec<String>, InterestError> {
    // Linear in the input: the list of distinct tags never grows past MAX_INTERESTS + 1,
    // so each duplicate check scans at most that many, and a long list stops early.
    let mut out: Vec<String> = Vec::with_capacity(raw.len().min(MAX_INTERESTS + 1));
    for tag in raw {
        let tag = Interest::parse(tag.as_ref())?.0;
        if !out.contains(&tag) {
            if out.len() == MAX_INTERESTS {
                return Err(InterestError::TooMany);
            }
            out.push(tag);
        }
    }
    Ok(out)
}

/// Whether `c` reorders or hides text: the bidirectional embedding, override and isolate
/// controls (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C) and the invisible
/// zero-width characters (U+200B, U+200C, U+2060–U+2064, U+FEFF, U+180E). The zero-width
/// joiner U+200D is not among them: emoji sequences need it.
pub fn is_invisible_or_bidi(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{061C}'
            | '\u{200B}'
            | '\u{200C}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
            | '\u{180E}'
    )
}

/// Age in whole years on `today` of someone born on `birth_date`.
pub fn age_on(birth_date: Date, today: Date) -> u8 {
    let mut years = today.year() - birth_date.year();
    if (today.month() as u8, today.day()) < (birth_date.month() as u8, birth_date.day()) {
        years -= 1;
    }
    years.clamp(0, i32::from(u8::MAX)) as u8
}

/// Today's date in UTC.
pub fn today_utc() -> Date {
    time::OffsetDateTime::now_utc().date()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn interests_are_trimmed_lowercased_and_deduplicated() {
        let got = normalize_interests(&["  Rust ", "rust", "Jazz"]).unwrap();
        assert_eq!(got, vec!["rust".to_owned(), "jazz".to_owned()]);
    }

    #[test]
    fn a_long_list_of_repeats_is_one_interest_and_many_distinct_ones_stop_early() {
        let repeats = vec!["chess"; 50_000];
        assert_eq!(
            normalize_interests(&repeats).unwrap(),
            vec!["chess".to_owned()]
        );
        // The 21st distinct tag is refused even when an invalid one follows it.
        let mut many: Vec<String> = (0..=MAX_INTERESTS).map(|i| format!("t{i}")).collect();
        many.push(String::new());
        assert_eq!(normalize_interests(&many), Err(InterestError::TooMany));
    }

    #[test]
    fn an_interest_with_invisible_characters_is_rejected() {
        for tag in ["ch\u{200B}ess", "\u{202E}chess"] {
            assert_eq!(
                normalize_interests(&[tag]),
                Err(InterestError::ControlCharacter),
                "{tag:?}"
            );
        }
    }

    #[test]
    fn an_emoji_sequence_with_a_joiner_is_an_interest() {
        assert!(normalize_interests(&["👩\u{200D}💻"]).is_ok());
    }

    #[test]
    fn an_empty_interest_is_rejected() {
        assert_eq!(normalize_interests(&["   "]), Err(InterestError::Empty));
    }

    #[test]
    fn an_interest_of_33_characters_is_rejected() {
        let long = "a".repeat(33);
        assert_eq!(normalize_interests(&[long]), Err(InterestError::TooLong));
    }

    #[test]
    fn twenty_one_distinct_interests_are_rejected() {
        let tags: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
        assert_eq!(normalize_interests(&tags), Err(InterestError::TooMany));
    }

    #[test]
    fn duplicates_do_not_count_towards_the_limit() {
        let mut tags: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
        tags.push("T0".to_owned());
        assert_eq!(normalize_interests(&tags).unwrap().len(), 20);
    }

    #[test]
    fn age_counts_only_completed_years() {
        assert_eq!(age_on(date!(2000 - 06 - 15), date!(2018 - 06 - 14)), 17);
        assert_eq!(age_on(date!(2000 - 06 - 15), date!(2018 - 06 - 15)), 18);
    }

    #[test]
    fn bidi_overrides_and_zero_width_spaces_are_flagged_but_emoji_joiners_are_not() {
        assert!(is_invisible_or_bidi('\u{202E}'));
        assert!(is_invisible_or_bidi('\u{2067}'));
        assert!(is_invisible_or_bidi('\u{200B}'));
        assert!(is_invisible_or_bidi('\u{FEFF}'));
        assert!(!is_invisible_or_bidi('\u{200D}'));
        assert!(!is_invisible_or_bidi('a'));
    }

    #[test]
    fn genders_round_trip_through_their_names() {
        for g in Gender::ALL {
            assert_eq!(Gender::parse(g.as_str()), Some(g));
        }
    }
}
