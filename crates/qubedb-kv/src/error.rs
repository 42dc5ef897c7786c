//! The storage layer's errors, split by who must act: the caller retries ([`Error::Conflict`]), the user fixes
//! input ([`Error::Limit`], [`Error::Locked`]), or an operator looks at the machine ([`Error::Io`],
//! [`Error::Corruption`]).

/// A storage error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Another transaction committed a conflicting write after this one's snapshot. Retryable.
    #[error("could not serialize access due to concurrent update")]
    Conflict,
    /// The data directory is already open in another process (or another `Store` of this one).
    #[error("database file {0} is already in use by another process")]
    Locked(String),
    /// The key is being written by another transaction still in progress: wait for it
    /// ([`crate::Transaction::take_lock_wait`]) and try again.
    #[error("the row is being changed by another transaction")]
    Busy,
    /// Waiting for the key would close a cycle of transactions waiting for each other.
    #[error("deadlock detected")]
    Deadlock,
    /// A named limit was exceeded.
    #[error("{0}")]
    Limit(String),
    /// The store has been closed (its committer stopped).
    #[error("the store is closed")]
    Closed,
    /// The operating system refused an operation (disk full, permission, I/O error).
    #[error("storage I/O error: {0}")]
    Io(String),
    /// The stored data is not what the engine wrote.
    #[error("storage corruption: {0}")]
    Corruption(String),
}

/// A storage result.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// True when retrying the whole transaction may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Conflict | Error::Deadlock)
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(error: $t) -> Self {
                let text = error.to_string();
                if text.contains("corrupt") {
                    Error::Corruption(text)
                } else {
                    Error::Io(text)
                }
            }
        }
    )*};
}

from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);
