//! Validated account values: username, password, display name, birth date, interests and
//! matching preferences. Each `parse` names the request field it rejects.

use secrecy::{ExposeSecret, SecretString};
use service_kit::error::ErrorCode;
use time::Date;
use wire::api::auth::Preferences;
use wire::api::matching::InterestMode;
use wire::domain::{
    Gender, MAX_AGE, MAX_FALLBACK_AFTER_SECS, MAX_WIDEN_EVERY_SECS, MIN_AGE, age_on,
    is_invisible_or_bidi, normalize_interests,
};

use crate::error::AuthError;

/// Shortest username.
pub const USERNAME_MIN: usize = 3;
/// Longest username.
pub const USERNAME_MAX: usize = 32;
/// Shortest password, in characters.
pub const PASSWORD_MIN: usize = 8;
/// Longest password, in characters.
pub const PASSWORD_MAX: usize = 128;
/// Longest display name, in characters.
pub const DISPLAY_NAME_MAX: usize = 64;

/// A username: 3 to 32 of `a-z0-9_`, stored lower-case so uniqueness ignores case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Lower-cases and validates a username.
    pub fn parse(raw: &str) -> Result<Self, AuthError> {
        let name = raw.to_ascii_lowercase();
        let len = name.chars().count();
        if !(USERNAME_MIN..=USERNAME_MAX).contains(&len) {
            return Err(AuthError::validation(
                "username",
                ErrorCode::InvalidUsername,
                format!("a username has {USERNAME_MIN} to {USERNAME_MAX} characters"),
            ));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(AuthError::validation(
                "username",
                ErrorCode::InvalidUsername,
                "a username may contain only letters a-z, digits and `_`",
            ));
        }
        Ok(Self(name))
    }

    /// The lower-case name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password: 8 to 128 characters and not the username. Never printed.
#[derive(Debug, Clone)]
pub struct Password(SecretString);

impl Password {
    /// Validates a password chosen for `username`; `field` names the request field.
    pub fn parse(raw: &str, username: &Username, field: &str) -> Result<Self, AuthError> {
        let len = raw.chars().count();
        if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&len) {
            return Err(AuthError::validation(
                field,
                ErrorCode::InvalidPassword,
                format!("a password has {PASSWORD_MIN} to {PASSWORD_MAX} characters"),
            ));
        }
        if raw.eq_ignore_ascii_case(username.as_str()) {
            return Err(AuthError::validation(
                field,
                ErrorCode::InvalidPassword,
                "the password must not be the username",
            ));
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    /// The secret, for hashing.
    pub fn into_secret(self) -> SecretString {
        self.0
    }

    /// The password text.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// A display name: trimmed, 1 to 64 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Trims and validates a display name.
    pub fn parse(raw: &str) -> Result<Self, AuthError> {
        let name = raw.trim();
        let len = name.chars().count();
        if len == 0 || len > DISPLAY_NAME_MAX {
            return Err(AuthError::validation(
                "display_name",
                ErrorCode::InvalidDisplayName,
                format!("a display name has 1 to {DISPLAY_NAME_MAX} characters"),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(AuthError::validation(
                "display_name",
                ErrorCode::InvalidDisplayName,
                "a display name must not contain control characters",
            ));
        }
        if name.chars().any(is_invisible_or_bidi) {
            return Err(AuthError::validation(
                "display_name",
                ErrorCode::InvalidDisplayName,
                "a display name must not contain invisible or text-direction characters",
            ));
        }
        if service_kit::content::is_offensive_name(name) {
            return Err(AuthError::validation(
                "display_name",
                ErrorCode::InvalidDisplayName,
                "this display name is not allowed; choose another",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A birth date of someone at least 18 and at most 120 years old.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BirthDate(Date);

impl BirthDate {
    /// Validates a birth date as of `today`.
    pub fn parse(date: Date, today: Date) -> Result<Self, AuthError> {
        if date > today {
            return Err(AuthError::validation(
                "birth_date",
                ErrorCode::InvalidBirthDate,
                "the birth date is in the future",
            ));
        }
        let age = age_on(date, today);
        if age < MIN_AGE {
            return Err(AuthError::validation(
                "birth_date",
                ErrorCode::TooYoung,
                format!("you must be at least {MIN_AGE} years old"),
            ));
        }
        if age > MAX_AGE {
            return Err(AuthError::validation(
                "birth_date",
                ErrorCode::InvalidBirthDate,
                format!("an age above {MAX_AGE} is not plausible"),
            ));
        }
        Ok(Self(date))
    }

    /// The date.
    pub fn date(self) -> Date {
        self.0
    }
}

/// Normalises interest tags (see [`wire::domain::normalize_interests`]); `field` names
/// the request field.
pub fn parse_interests(raw: &[String], field: &str) -> Result<Vec<String>, AuthError> {
    normalize_interests(raw).map_err(|e| AuthError::validation(field, e.code(), e.to_string()))
}

/// Validates and normalises matching preferences: genders deduplicated (empty = any),
/// `18 <= min_age <= max_age <= 120`, interests normalised.
pub fn parse_preferences(raw: Preferences) -> Result<Preferences, AuthError> {
    if raw.min_age < MIN_AGE {
        return Err(AuthError::validation(
            "min_age",
            ErrorCode::InvalidAgeRange,
            format!("min_age must be at least {MIN_AGE}"),
        ));
    }
    if raw.max_age > MAX_AGE {
        return Err(AuthError::validation(
            "max_age",
            ErrorCode::InvalidAgeRange,
            format!("max_age must be at most {MAX_AGE}"),
        ));
    }
    if raw.min_age > raw.max_age {
        return Err(AuthError::validation(
            "max_age",
            ErrorCode::InvalidAgeRange,
            "max_age must not be below min_age",
        ));
    }
    let mut genders: Vec<Gender> = Vec::with_capacity(raw.genders.len());
    for g in raw.genders {
        if !genders.contains(&g) {
            genders.push(g);
        }
    }
    if raw.age_widen_years > MAX_AGE - MIN_AGE {
        return Err(AuthError::validation(
            "age_widen_years",
            ErrorCode::InvalidAgeWiden,
            format!("age_widen_years must be at most {}", MAX_AGE - MIN_AGE),
        ));
    }
    if !(1..=MAX_WIDEN_EVERY_SECS).contains(&raw.widen_every_secs) {
        return Err(AuthError::validation(
            "widen_every_secs",
            ErrorCode::InvalidWidenEvery,
            format!("widen_every_secs must be between 1 and {MAX_WIDEN_EVERY_SECS}"),
        ));
    }
    if raw
        .fallback_after_secs
        .is_some_and(|s| s > MAX_FALLBACK_AFTER_SECS)
    {
        return Err(AuthError::validation(
            "fallback_after_secs",
            ErrorCode::InvalidFallback,
            format!("fallback_after_secs must be at most {MAX_FALLBACK_AFTER_SECS}"),
        ));
    }
    let interests = parse_interests(&raw.interests, "interests")?;
    if raw.interest_mode == InterestMode::Required && interests.is_empty() {
        return Err(AuthError::validation(
            "interests",
            ErrorCode::InterestsRequired,
            "required interests need at least one interest",
        ));
    }
    Ok(Preferences {
        genders,
        min_age: raw.min_age,
        max_age: raw.max_age,
        interests,
        interest_mode: raw.interest_mode,
        age_widen_years: raw.age_widen_years,
        widen_every_secs: raw.widen_every_secs,
        fallback_after_secs: raw.fallback_after_secs,
    })
}

/// The preferences of a new account: anyone aged 18 to 120, sharing the user's interests.
pub fn default_preferences(interests: &[String]) -> Preferences {
    Preferences {
        genders: Vec::new(),
        min_age: MIN_AGE,
        max_age: MAX_AGE,
        interests: interests.to_vec(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn field_and_code(err: AuthError) -> (String, ErrorCode) {
        let api = service_kit::error::ApiError::from(err);
        (
            api.body.error.field.unwrap_or_default(),
            api.body.error.code,
        )
    }

    #[test]
    fn a_username_is_lower_cased() {
        assert_eq!(Username::parse("Alice_99").unwrap().as_str(), "alice_99");
    }

    #[test]
    fn a_username_with_spaces_is_rejected() {
        let (field, code) = field_and_code(Username::parse("al ice").unwrap_err());
        assert_eq!(
            (field.as_str(), code),
            ("username", ErrorCode::InvalidUsername)
        );
    }

    #[test]
    fn a_username_of_two_characters_is_rejected() {
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("abc").is_ok());
    }

    #[test]
    fn a_username_of_33_characters_is_rejected() {
        assert!(Username::parse(&"a".repeat(33)).is_err());
        assert!(Username::parse(&"a".repeat(32)).is_ok());
    }

    #[test]
    fn a_username_with_non_ascii_letters_is_rejected() {
        assert!(Username::parse("jürgen").is_err());
        assert!(Username::parse("bob-smith").is_err());
    }

    #[test]
    fn a_password_of_seven_characters_is_rejected() {
        let user = Username::parse("alice").unwrap();
        assert!(Password::parse("1234567", &user, "password").is_err());
        assert!(Password::parse("12345678", &user, "password").is_ok());
    }

    #[test]
    fn a_password_of_129_characters_is_rejected() {
        let user = Username::parse("alice").unwrap();
        assert!(Password::parse(&"x".repeat(129), &user, "password").is_err());
        assert!(Password::parse(&"x".repeat(128), &user, "password").is_ok());
    }

    #[test]
    fn a_password_length_counts_characters_not_bytes() {
        let user = Username::parse("alice").unwrap();
        assert!(Password::parse("ééééééé", &user, "password").is_err());
        assert!(Password::parse("éééééééé", &user, "password").is_ok());
    }

    #[test]
    fn a_password_equal_to_the_username_in_any_case_is_rejected() {
        let user = Username::parse("alice_long").unwrap();
        let (field, _) =
            field_and_code(Password::parse("ALICE_long", &user, "new_password").unwrap_err());
        assert_eq!(field, "new_password");
    }

    #[test]
    fn a_display_name_is_trimmed() {
        assert_eq!(
            DisplayName::parse("  Alice  ").unwrap().into_inner(),
            "Alice"
        );
    }

    #[test]
    fn a_blank_display_name_is_rejected() {
        assert!(DisplayName::parse("   ").is_err());
    }

    #[test]
    fn a_display_name_of_65_characters_is_rejected() {
        assert!(DisplayName::parse(&"é".repeat(65)).is_err());
        assert!(DisplayName::parse(&"é".repeat(64)).is_ok());
    }

    #[test]
    fn a_display_name_with_a_control_character_is_rejected() {
        assert!(DisplayName::parse("Ali\u{7}ce").is_err());
        assert!(DisplayName::parse("Ali\nce").is_err());
    }

    #[test]
    fn a_display_name_that_reorders_or_hides_text_is_rejected() {
        assert!(DisplayName::parse("Ann\u{202E}nimda").is_err());
        assert!(DisplayName::parse("Ad\u{200B}min").is_err());
        assert!(DisplayName::parse("Zoë 👩\u{200D}💻").is_ok());
    }

    #[test]
    fn someone_turning_18_today_may_sign_up() {
        assert!(BirthDate::parse(date!(2008 - 11 - 23), date!(2026 - 11 - 23)).is_ok());
    }

    #[test]
    fn someone_turning_18_tomorrow_is_too_young() {
        let (field, code) = field_and_code(
            BirthDate::parse(date!(2008 - 11 - 24), date!(2026 - 11 - 23)).unwrap_err(),
        );
        assert_eq!((field.as_str(), code), ("birth_date", ErrorCode::TooYoung));
    }

    #[test]
    fn a_birth_date_in_the_future_is_rejected() {
        assert!(BirthDate::parse(date!(2030 - 01 - 01), date!(2026 - 11 - 23)).is_err());
    }

    #[test]
    fn an_age_above_120_is_rejected() {
        assert!(BirthDate::parse(date!(1900 - 01 - 01), date!(2026 - 11 - 23)).is_err());
    }

    #[test]
    fn interests_errors_name_the_field() {
        let (field, code) =
            field_and_code(parse_interests(&[" ".to_owned()], "interests").unwrap_err());
        assert_eq!(
            (field.as_str(), code),
            ("interests", ErrorCode::InvalidInterest)
        );
    }

    fn prefs(min_age: u8, max_age: u8) -> Preferences {
        Preferences {
            genders: vec![Gender::Female, Gender::Female, Gender::Other],
            min_age,
            max_age,
            interests: vec![" Music ".to_owned(), "music".to_owned()],
            ..Default::default()
        }
    }

    #[test]
    fn preferences_are_normalised() {
        let p = parse_preferences(prefs(20, 30)).unwrap();
        assert_eq!(p.genders, vec![Gender::Female, Gender::Other]);
        assert_eq!(p.interests, vec!["music".to_owned()]);
    }

    #[test]
    fn a_minimum_age_below_18_is_rejected() {
        let (field, _) = field_and_code(parse_preferences(prefs(17, 30)).unwrap_err());
        assert_eq!(field, "min_age");
    }

    #[test]
    fn a_maximum_age_above_120_is_rejected() {
        let (field, _) = field_and_code(parse_preferences(prefs(18, 121)).unwrap_err());
        assert_eq!(field, "max_age");
    }

    #[test]
    fn a_maximum_age_below_the_minimum_is_rejected() {
        assert!(parse_preferences(prefs(30, 29)).is_err());
        assert!(parse_preferences(prefs(30, 30)).is_ok());
    }
}
