//! The profanity and slur filter: masking what a user receives at their chosen level
//! ([`ContentFilter`]), and spotting slurs in names. Stored text is never altered; masking
//! happens on delivery and in history, per recipient.

use std::borrow::Cow;

use rustrict::{Censor, Type};
use wire::api::auth::ContentFilter;

/// What each level masks.
fn threshold(level: ContentFilter) -> Option<Type> {
    match level {
        ContentFilter::Off => None,
        // Slurs and severe insults: offensive content at the severe level.
        ContentFilter::Mild => Some(Type::OFFENSIVE & Type::SEVERE),
        // Anything profane, sexual, offensive or mean, at moderate severity or above.
        ContentFilter::Strict => Some(Type::INAPPROPRIATE & (Type::MODERATE | Type::SEVERE)),
    }
}

/// `text` as a receiver at `level` sees it: offending words replaced by `*` (their first
/// letter kept), or the text itself, borrowed, when nothing offends.
pub fn mask(text: &str, level: ContentFilter) -> Cow<'_, str> {
    let Some(threshold) = threshold(level) else {
        return Cow::Borrowed(text);
    };
    let (censored, analysis) = Censor::from_str(text)
        .with_censor_threshold(threshold)
        .censor_and_analyze();
    if analysis.is(threshold) {
        Cow::Owned(censored)
    } else {
        Cow::Borrowed(text)
    }
}

/// Whether a display name holds a slur or a severe insult (such names are refused).
///
/// Only the letters are analysed (digits and punctuation read as spaces): read as
/// leetspeak, random digits in names such as `dan_74094f2432` look like insults to the
/// filter (about one such name in twenty-five), while slurs spelt with digits are still
/// caught by their letters.
pub fn is_offensive_name(name: &str) -> bool {
    let letters: String = name
        .chars()
        .map(|c| if c.is_alphabetic() { c } else { ' ' })
        .collect();
    Censor::from_str(&letters)
        .analyze()
        .is(Type::OFFENSIVE & (Type::MODERATE | Type::SEVERE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_off_level_masks_nothing() {
        assert_eq!(mask("what the fuck", ContentFilter::Off), "what the fuck");
    }

    #[test]
    fn the_strict_level_masks_profanity_and_keeps_clean_text_borrowed() {
        let masked = mask("what the fuck is this", ContentFilter::Strict);
        assert!(!masked.contains("fuck"), "{masked}");
        assert!(masked.starts_with("what the f"), "{masked}");
        assert!(matches!(
            mask("hello there", ContentFilter::Strict),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn the_mild_level_leaves_ordinary_swearing_alone() {
        assert_eq!(mask("oh crap", ContentFilter::Mild), "oh crap");
    }

    #[test]
    fn ordinary_names_are_not_offensive() {
        assert!(!is_offensive_name("Ann"));
        assert!(!is_offensive_name("Scunthorpe Fan"));
    }

    #[test]
    fn names_with_random_digits_pass_and_slurs_spelt_with_digits_do_not() {
        for name in [
            "dan_74094f2432 display",
            "dan_890816bba8 display",
            "dan_c0f74965b6 display",
            "dan_4ff902a632 display",
            "dan_d8d75fa999 display",
        ] {
            assert!(!is_offensive_name(name), "{name}");
        }
        for name in ["n1gger", "f4ggot", "retard"] {
            assert!(is_offensive_name(name), "{name}");
        }
    }
}
