//! Stands in for src/error.rs (which uses pgrx) for the files the fuzz crate includes: the
//! variants they construct, with the same fields. A new variant used there fails the build here;
//! add it.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncError {
    IdMismatch { column: String, id: String, key: String },
    PayloadNotObject { got: String },
    BadCursor,
}
