//! The model layer's errors: a user error with its PostgreSQL SQLSTATE, a storage error passed through, or
//! stored bytes that do not decode (corruption, logged loudly by the caller).

/// A model error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The user asked for something invalid; `code` is the PostgreSQL SQLSTATE.
    #[error("{message}")]
    User { code: &'static str, message: String },
    /// The storage layer failed (conflict, I/O, limits).
    #[error(transparent)]
    Storage(#[from] qubedb_kv::Error),
    /// Stored bytes do not decode as what the engine wrote.
    #[error("corrupt data: {0}")]
    Corruption(String),
}

/// A model result.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A user error with SQLSTATE `code`.
    pub fn user(code: &'static str, message: impl Into<String>) -> Error {
        Error::User {
            code,
            message: message.into(),
        }
    }

    /// Stored bytes that do not decode.
    pub fn corruption(message: impl Into<String>) -> Error {
        Error::Corruption(message.into())
    }
}
