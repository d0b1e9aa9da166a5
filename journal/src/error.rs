//! The journal's error type. Every variant is either the user's to fix
//! (a bad point, a bad path) or an IO/corruption problem, and says which.

use crate::id::OpId;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("storage: {0}")]
    Store(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt journal: {0}")]
    Corrupt(String),
    /// A content hash that is no version of the file it was asked of.
    #[error("{0}")]
    UnknownContent(String),
    #[error("op {} rejected: {reason}", .op.short())]
    Rejected { op: OpId, reason: String },
    #[error("malformed op: {0}")]
    Malformed(String),
    #[error("upgrade required: {0}")]
    UpgradeRequired(String),
    #[error("{0}")]
    BadPoint(String),
    #[error("{0}")]
    BadPath(String),
    #[error("{0}")]
    Keys(String),
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// Whether the user can fix this by changing what they asked for
    /// (exit code 1), as opposed to an IO or internal fault (exit code 2).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Error::BadPoint(_) | Error::BadPath(_) | Error::Usage(_) | Error::Keys(_)
        )
    }
}

impl From<fjall::Error> for Error {
    fn from(e: fjall::Error) -> Self {
        Error::Store(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
