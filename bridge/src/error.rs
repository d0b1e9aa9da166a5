//! Errors at the binary's edge: one line, and exit 1 for what the user can
//! fix, 2 for IO and internal faults.

use std::fmt;

/// An error the user can fix by changing what they asked for.
#[derive(Debug)]
pub struct UserError(pub String);

impl UserError {
    pub fn new(msg: impl Into<String>) -> Self {
        UserError(msg.into())
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UserError {}

pub fn user(msg: impl Into<String>) -> anyhow::Error {
    UserError::new(msg).into()
}

/// 1 for a user error anywhere in the chain, else 2.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    for cause in e.chain() {
        if cause.downcast_ref::<UserError>().is_some()
            || cause.downcast_ref::<crate::vault::Busy>().is_some()
        {
            return 1;
        }
        if let Some(j) = cause.downcast_ref::<vellum_journal::Error>() {
            return if j.is_user_error() { 1 } else { 2 };
        }
    }
    2
}

/// The whole chain on one line.
pub fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}
