//! The one behaviour suite every queue backend must pass.
