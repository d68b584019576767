//! What the user reads when something goes wrong: every error in plain sentences, never a code.

use client_sdk::{Error, ErrorCode};

/// An error ready to show: a sentence, and the form field it is about, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiError {
    /// The sentence to show.
    pub message: String,
    /// The request field it names (`username`, `birth_date`, ...), for showing it beside that field.
    pub field: Option<String>,
    /// Whether trying again later may work.
    pub transient: bool,
    /// Whether the session is over and the user must log in again.
    pub session_over: bool,
}

impl UiError {
    /// An error of the client's own (no server involved).
    pub fn local(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            field: None,
            transient: false,
            session_over: false,
        }
    }

    /// The same, about one form field.
    pub fn for_field(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_owned()),
            ..Self::local(message)
        }
    }
}

impl From<&Error> for UiError {
    fn from(err: &Error) -> Self {
        let field = err
            .field()
            .map(str::to_owned)
            .or_else(|| err.code().and_then(field_of_code).map(str::to_owned));
        let session_over = matches!(err, Error::SessionEnded | Error::NotLoggedIn)
            || matches!(
                err.code(),
                Some(
                    ErrorCode::SessionEnded
                        | ErrorCode::InvalidRefreshToken
                        | ErrorCode::RefreshTokenReused
                        | ErrorCode::InvalidToken
                        | ErrorCode::MissingToken
                )
            );
        Self {
            message: describe(err),
            field,
            transient: err.is_transient(),
            session_over,
        }
    }
}

/// The form field a validation code is about, when the server did not name one.
fn field_of_code(code: ErrorCode) -> Option<&'static str> {
    Some(match code {
        ErrorCode::InvalidUsername | ErrorCode::UsernameTaken => "username",
        ErrorCode::InvalidPassword => "password",
        ErrorCode::InvalidDisplayName => "display_name",
        ErrorCode::InvalidBirthDate | ErrorCode::TooYoung => "birth_date",
        ErrorCode::InvalidInterest | ErrorCode::TooManyInterests => "interests",
        ErrorCode::WrongPassword => "current_password",
        ErrorCode::AgeOutOfRange | ErrorCode::InvalidAgeRange => "min_age",
        ErrorCode::InvalidAgeWiden => "age_widen_years",
        ErrorCode::InvalidWidenEvery => "widen_every_secs",
        ErrorCode::InvalidFallback => "fallback_after_secs",
        ErrorCode::ReasonInvalid => "reason",
        _ => return None,
    })
}

/// A sentence for any SDK error.
pub fn describe(err: &Error) -> String {
    match err {
        Error::Api { body, .. } => match body.error.code {
            ErrorCode::MissingField | ErrorCode::InvalidField => match body.error.field.as_deref() {
                Some(field) => format!("Please check the {}.", field_label(field)),
                None => sentence(body.error.code).to_owned(),
            },
            code => sentence(code).to_owned(),
        },
        Error::Refused { code, .. } => sentence(*code).to_owned(),
        Error::NotLoggedIn | Error::SessionEnded => {
            "Your session has ended. Please log in again.".to_owned()
        }
        Error::Transport(_) => {
            "The server cannot be reached. Check the address and your network connection."
                .to_owned()
        }
        Error::Decode(what) if what.starts_with("base url") => {
            "That server address is not valid. It looks like http://127.0.0.1:8080.".to_owned()
        }
        Error::Decode(_) => {
            "The server answered something this version does not understand. Is it a Random Chats server?"
                .to_owned()
        }
        Error::Closed => "The connection to the server is closed.".to_owned(),
    }
}

/// How a request field is called on screen.
pub fn field_label(field: &str) -> &str {
    match field {
        "username" => "user name",
        "password" | "new_password" => "password",
        "current_password" => "current password",
        "display_name" => "display name",
        "birth_date" => "birth date",
        "gender" => "gender",
        "interests" => "interests",
        "genders" => "genders you want to meet",
        "min_age" | "max_age" => "age range",
        "reason" => "reason",
        other => other,
    }
}

/// A sentence for an error code.
pub fn sentence(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidUsername => {
            "A user name is 3 to 32 characters: small letters a–z, digits and the underscore."
        }
        ErrorCode::UsernameTaken => "This user name is taken. Please choose another.",
        ErrorCode::InvalidPassword => {
            "A password is 8 to 128 characters and must differ from the user name."
        }
        ErrorCode::InvalidDisplayName => {
            "The display name must not be empty, too long, or hold invisible characters."
        }
        ErrorCode::InvalidBirthDate => "That birth date is not possible.",
        ErrorCode::TooYoung => "You must be 18 or older to use Random Chats.",
        ErrorCode::InvalidInterest => {
            "Each interest is 1 to 32 characters, without invisible characters."
        }
        ErrorCode::TooManyInterests => "At most 20 interests, please.",
        ErrorCode::InvalidCredentials => "The user name or the password is wrong.",
        ErrorCode::WrongPassword => "The current password is wrong.",
        ErrorCode::TooManyAttempts => {
            "Too many failed attempts. Please wait a few minutes and try again."
        }
        ErrorCode::AccountBanned => "This account has been banned.",
        ErrorCode::InvalidRefreshToken
        | ErrorCode::RefreshTokenReused
        | ErrorCode::SessionEnded
        | ErrorCode::InvalidToken
        | ErrorCode::MissingToken
        | ErrorCode::TokenExpired => "Your session has ended. Please log in again.",
        ErrorCode::AgeOutOfRange => "Ages go from 18 to 120.",
        ErrorCode::InvalidAgeRange => "The lowest age must not be above the highest.",
        ErrorCode::InvalidAgeWiden => "The age range cannot widen by more than the whole range.",
        ErrorCode::InvalidWidenEvery => "Widening happens every 1 second to once a day.",
        ErrorCode::InvalidFallback => "The fallback can wait at most a week.",
        ErrorCode::InterestsRequired => {
            "To require shared interests, first add some interests to your profile or preferences."
        }
        ErrorCode::ChatNotFound => "This chat is not available.",
        ErrorCode::ChatEnded => "This chat has ended; messages can no longer be sent.",
        ErrorCode::Blocked => "One of you has blocked the other.",
        ErrorCode::TextEmpty => "The message is empty.",
        ErrorCode::TextTooLong => "The message is too long (at most 4000 characters).",
        ErrorCode::TextControlChars => "The message holds characters that cannot be sent.",
        ErrorCode::CannotBlockSelf => "You cannot block yourself.",
        ErrorCode::TooManyBlocks => "You have blocked as many people as allowed.",
        ErrorCode::CannotReportSelf => "You cannot report yourself.",
        ErrorCode::ReasonInvalid => "Please give a reason of at most 1000 characters.",
        ErrorCode::TooManyReports => "You have sent many reports. Please wait before sending more.",
        ErrorCode::RateLimited => "You are going a little fast. Please wait a moment.",
        ErrorCode::Overloaded
        | ErrorCode::BackendUnavailable
        | ErrorCode::NotReady
        | ErrorCode::Unavailable
        | ErrorCode::NoWsHandler => "The server is busy or partly down. Please try again shortly.",
        ErrorCode::Internal => "The server ran into a problem. Please try again.",
        _ => "The server refused this request. Please try again, or restart the app.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_error_code_is_shown_raw() {
        for &code in ErrorCode::ALL {
            let text = sentence(code);
            // Codes are snake_case words; a sentence holds no underscore and is not the code.
            assert!(
                !text.contains('_') && text != code.as_str(),
                "{code:?}: {text}"
            );
            assert!(text.ends_with('.'), "{code:?}: {text}");
        }
    }

    #[test]
    fn a_taken_user_name_is_about_the_user_name_field() {
        assert_eq!(field_of_code(ErrorCode::UsernameTaken), Some("username"));
        assert_eq!(field_of_code(ErrorCode::TooYoung), Some("birth_date"));
    }
}
