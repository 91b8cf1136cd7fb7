//! Every error a caller can provoke, each with its SQLSTATE, detail and hint.
//!
//! Errors raised by PostgreSQL itself inside our statements (42501 permission denied, 40001
//! serialization failure, 23xxx constraint violations) pass through untouched: they already carry
//! the right SQLSTATE. The extension raises these as PostgreSQL errors (its `error` module).

pub use crate::sqlstate::SqlState;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// A required argument was SQL NULL.
    #[error("{0} must not be null")]
    NullArgument(&'static str),

    /// The payload is valid JSON but not an object.
    #[error("payload must be a JSON object")]
    PayloadNotObject { got: String },

    /// `client_ts` is `infinity` or `-infinity`.
    #[error("client_ts must be a finite timestamp")]
    InfiniteTimestamp { value: &'static str },

    /// The payload's key-column key names another row than the `id` argument.
    #[error("payload key \"{column}\" does not match the id argument")]
    IdMismatch { column: String, id: String, key: String },

    /// A value that its column's type does not accept (or a domain constraint refuses).
    #[error("invalid value for column \"{column}\" of table {table}: {cause}")]
    BadValue { column: String, table: String, sqlstate: SqlState, cause: String, detail: Option<String> },

    /// `sync_upsert_in` on a table that `track` has not put under sync.
    #[error("table {table} is not tracked")]
    NotTracked { table: String },

    /// A payload key that names no column.
    #[error("payload key \"{key}\" is not a column of table {table}")]
    UnknownKey { key: String, table: String },

    /// A payload key naming the write-timestamp column.
    #[error("payload key \"{key}\" is the write-timestamp column of table {table}")]
    TimestampKey { key: String, table: String },

    /// A payload key naming a generated (or GENERATED ALWAYS identity) column.
    #[error("payload key \"{key}\" names a generated column of table {table}")]
    GeneratedKey { key: String, table: String },

    /// track()/untrack() on something that is not an ordinary or partitioned table.
    #[error("{table} is not a table")]
    NotATable { table: String },

    /// track() of a temporary table.
    #[error("table {table} is temporary: only permanent and unlogged tables can be tracked")]
    TemporaryTable { table: String },

    /// track()/untrack() by a user who does not own the table.
    #[error("must be owner of table {table}")]
    NotOwner { table: String },

    /// track() on one of the extension's own tables.
    #[error("cannot track inventory_sync's own table {table}")]
    OwnTable { table: String },

    /// The table has no primary key, or one over several columns.
    #[error("table {table} has no single-column primary key")]
    NoSingleKey { table: String, columns: usize },

    /// The primary key's type is not one of the supported ones.
    #[error("primary key column \"{column}\" of table {table} has type {typ}")]
    KeyType { column: String, table: String, typ: String },

    /// The named write-timestamp column does not exist.
    #[error("column \"{column}\" of table {table} does not exist")]
    NoTimestampColumn { column: String, table: String },

    /// The write-timestamp column is not usable as one.
    #[error("column \"{column}\" of table {table} cannot be the write-timestamp column")]
    BadTimestampColumn { column: String, table: String, why: String },

    /// sync_push's argument is not an array.
    #[error("changes must be a JSON array")]
    NotAnArray { got: String },

    /// A sync_push change of the wrong shape.
    #[error("{0}")]
    BadChange(String),

    /// An error in change `index` of an all-or-nothing sync_push.
    #[error("change {index}: {message}")]
    InChange { index: usize, sqlstate: SqlState, message: String },

    /// A JSON value the extension must take apart (a merge's fields, a typed column's value, a
    /// change of a batch) nested deeper than it reads.
    #[error("JSON value nested too deeply (more than 127 levels)")]
    NestedTooDeep,

    /// A pull cursor that is not one sync_pull handed out.
    #[error("invalid cursor")]
    BadCursor,

    /// A pull cursor from before the last tombstone purge.
    #[error("cursor is older than the last tombstone purge")]
    CursorExpired,

    /// A pull cursor past the end of the history this database kept of its era: handed out by a
    /// copy of the database that went on after the backup it was restored from.
    #[error("cursor is from a history this database does not have")]
    CursorFromOtherHistory,

    /// A write on a node of a cluster whose nodes write in eras of their own
    /// (`inventory_sync.distribute()`), on a node that was not given one.
    #[error("this node has no era to write in")]
    NodeWithoutEra,

    /// `distribute()` where it cannot run: without Citus, or not on the coordinator.
    #[error("{0}")]
    NotACluster(&'static str),

    /// `stamp_position()` used otherwise than as a row trigger before an insert or update of a
    /// table with a bigint `position` column (distribute() puts it on the feed's tables).
    #[error(
        "stamp_position() must be a row trigger before insert or update of a table with a bigint column \"position\""
    )]
    StampMisused,

    /// A distributed table whose columns a node numbers otherwise than this one (dropped before
    /// the table was distributed): the catalogs name its key and timestamp columns by number.
    #[error("table {table} numbers its columns otherwise on node {node}")]
    NumberedOtherwise { table: String, node: i32 },

    /// A tracked table for `distribute()` to distribute that has dropped columns: Citus makes the
    /// workers' copies without them, numbering the columns after them otherwise.
    #[error("table {table} has dropped columns, which the workers' copies would number otherwise")]
    DroppedColumns { table: String },

    /// On a Citus cluster the extension is spread over: a table to track that Citus neither
    /// distributes nor replicates, which the calls run on the nodes could not reach.
    #[error("table {table} is not distributed over the cluster")]
    NotOnTheCluster { table: String },

    /// A write a tracked table's own rules refused: a constraint (`reason` "constraint": class 23,
    /// a domain's too) or an error its trigger raised ("trigger"), with PostgreSQL's SQLSTATE and
    /// message and the constraint's name if it gave one. Where the write is decided it becomes a
    /// `rejected` answer; anywhere else (a batch's chunk, an atomic batch) it fails as the rule's
    /// own error.
    #[error("{message}")]
    Refused { reason: &'static str, constraint: Option<String>, sqlstate: SqlState, message: String },

    /// On a Citus cluster: a table whose key Citus cannot colocate with the feed records and
    /// mutation ids of its key type (`tracking::Side::colocated_with`): an `integer` key (those
    /// are keyed by `bigint`), or a text key of another collation than the database's default.
    #[error("the key of table {table} cannot be colocated with its feed records on the cluster")]
    KeyNotColocatable { table: String, collation: bool },

    /// On a Citus cluster: a table to track that Citus spreads otherwise than by its key, with
    /// the feed records and mutation ids of its key type (`with`).
    #[error("table {table} is not distributed by its key with {with}")]
    NotColocated { table: String, with: &'static str },

    /// A node of the cluster did not answer for its horizon.
    #[error("node {node} did not answer: {message}")]
    NodeUnreachable { node: i32, message: String },

    /// An argument out of its range.
    #[error("{name} must be {range}")]
    OutOfRange { name: &'static str, range: &'static str },

    /// set_policy with an unknown policy name.
    #[error("unknown policy \"{0}\"")]
    UnknownPolicy(String),

    /// set_policy on a key or timestamp column (or the default table's id/updated_at).
    #[error("field \"{field}\" of table {table} cannot have a merge policy")]
    NoPolicyHere { field: String, table: String },

    /// A delta policy on a column that is not numeric.
    #[error("delta field \"{field}\" must be numeric")]
    DeltaNeedsNumber { field: String, typ: String },

    /// A delta write whose value, base or stored value is not a number.
    #[error("delta field \"{field}\" needs numbers")]
    DeltaNotANumber { field: String },

    /// A base that is not a JSON object.
    #[error("base must be a JSON object")]
    BaseNotObject,

    /// `set_ordering` with an ordering that does not exist.
    #[error("unknown ordering \"{0}\"")]
    UnknownOrdering(String),

    /// A `base_version` that is not a version this server hands out.
    #[error("base_version \"{given}\" is not a version")]
    BadVersion { given: String },

    /// A mutation_id without the client_id that scopes it.
    #[error("mutation_id requires client_id")]
    MutationWithoutClient,

    /// A retried mutation that another database user applied.
    #[error("mutation \"{mutation_id}\" of client \"{client_id}\" was applied by another database user")]
    MutationOfOtherUser { client_id: String, mutation_id: String },

    /// Concurrent inserts and deletes of the same row kept a write from settling.
    #[error("could not settle the write to table {table} after {rounds} attempts")]
    Unsettled { table: String, rounds: usize },

    /// A tracked table was altered so that its key or timestamp column no longer qualifies.
    #[error("table {table} can no longer be synced")]
    TrackingBroken { table: String, why: String },
}

impl SyncError {
    pub fn sqlstate(&self) -> SqlState {
        match self {
            SyncError::NullArgument(_) => SqlState::NULL_VALUE_NOT_ALLOWED,
            SyncError::PayloadNotObject { .. }
            | SyncError::NotAnArray { .. }
            | SyncError::BadChange(_)
            | SyncError::BadCursor
            | SyncError::OutOfRange { .. }
            | SyncError::MutationWithoutClient
            | SyncError::UnknownPolicy(_)
            | SyncError::UnknownOrdering(_)
            | SyncError::NoPolicyHere { .. }
            | SyncError::DeltaNotANumber { .. }
            | SyncError::BaseNotObject
            | SyncError::BadVersion { .. }
            | SyncError::IdMismatch { .. }
            | SyncError::TimestampKey { .. } => SqlState::INVALID_PARAMETER_VALUE,
            SyncError::InfiniteTimestamp { .. } => SqlState::DATETIME_FIELD_OVERFLOW,
            SyncError::BadValue { sqlstate, .. } | SyncError::InChange { sqlstate, .. } => *sqlstate,
            SyncError::CursorExpired
            | SyncError::CursorFromOtherHistory
            | SyncError::NodeWithoutEra
            | SyncError::NumberedOtherwise { .. }
            | SyncError::NotOnTheCluster { .. }
            | SyncError::NotColocated { .. }
            | SyncError::DroppedColumns { .. }
            | SyncError::NotACluster(_) => SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
            SyncError::NodeUnreachable { .. } => SqlState::CONNECTION_FAILURE,
            SyncError::Refused { sqlstate, .. } => *sqlstate,
            SyncError::KeyNotColocatable { collation: true, .. } => SqlState::COLLATION_MISMATCH,
            SyncError::KeyNotColocatable { .. } => SqlState::DATATYPE_MISMATCH,
            SyncError::StampMisused => SqlState::TRIGGER_PROTOCOL_VIOLATED,
            SyncError::NestedTooDeep => SqlState::STATEMENT_TOO_COMPLEX,
            SyncError::Unsettled { .. } => SqlState::SERIALIZATION_FAILURE,
            SyncError::NotTracked { .. } | SyncError::TrackingBroken { .. } => {
                SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE
            }
            SyncError::UnknownKey { .. } | SyncError::NoTimestampColumn { .. } => SqlState::UNDEFINED_COLUMN,
            SyncError::GeneratedKey { .. } => SqlState::GENERATED_ALWAYS,
            SyncError::NotATable { .. } | SyncError::OwnTable { .. } | SyncError::TemporaryTable { .. } => {
                SqlState::WRONG_OBJECT_TYPE
            }
            SyncError::NotOwner { .. } | SyncError::MutationOfOtherUser { .. } => SqlState::INSUFFICIENT_PRIVILEGE,
            SyncError::NoSingleKey { .. } => SqlState::INVALID_TABLE_DEFINITION,
            SyncError::KeyType { .. } | SyncError::BadTimestampColumn { .. } | SyncError::DeltaNeedsNumber { .. } => {
                SqlState::DATATYPE_MISMATCH
            }
        }
    }

    pub fn detail(&self) -> Option<String> {
        match self {
            SyncError::NullArgument(_) => None,
            SyncError::PayloadNotObject { got } => {
                Some(format!("The payload is of JSON type {got}; it must hold the item's fields by name."))
            }
            SyncError::InfiniteTimestamp { value } => {
                Some(format!("The client_ts argument is {value}, which cannot order writes."))
            }
            SyncError::IdMismatch { column, id, key } => {
                Some(format!("The id argument is {id} but the payload's \"{column}\" key is {key}."))
            }
            SyncError::BadValue { detail, .. } => detail.clone(),
            SyncError::NotAnArray { got } => Some(format!("It is of JSON type {got}.")),
            SyncError::NoPolicyHere { .. } => {
                Some("The key and the write timestamp are ordered by the row's last-write-wins.".into())
            }
            SyncError::DeltaNeedsNumber { typ, .. } => Some(format!("It is of type {typ}.")),
            SyncError::DeltaNotANumber { .. } => {
                Some("The value sent, its base and the stored value must all be numbers.".into())
            }
            SyncError::CursorExpired => {
                Some("Tombstones this device had not pulled yet may have been purged since.".into())
            }
            SyncError::CursorFromOtherHistory => Some(
                "The database was restored from a backup older than the device's last pull, so the device holds \
                 changes the database no longer has."
                    .into(),
            ),
            SyncError::TimestampKey { .. } => {
                Some("The write timestamp of a synced row always comes from client_ts.".into())
            }
            SyncError::GeneratedKey { .. } => Some("PostgreSQL computes its value; it cannot be written.".into()),
            SyncError::NoSingleKey { columns: 0, .. } => Some("It has no primary key.".into()),
            SyncError::NoSingleKey { columns, .. } => Some(format!("Its primary key has {columns} columns.")),
            SyncError::KeyType { .. } => {
                Some("A tracked table's primary key must be of type bigint, integer, uuid or text.".into())
            }
            SyncError::KeyNotColocatable { collation: false, .. } => Some(
                "Citus colocates only columns of one type, and the feed records of integer keys are keyed by bigint."
                    .into(),
            ),
            SyncError::KeyNotColocatable { collation: true, .. } => Some(
                "Citus colocates only text columns of one collation, and the feed records of text keys are keyed in \
                 the database's default collation."
                    .into(),
            ),
            SyncError::BadTimestampColumn { why, .. } | SyncError::TrackingBroken { why, .. } => Some(why.clone()),
            _ => None,
        }
    }

    pub fn hint(&self) -> Option<&'static str> {
        match self {
            SyncError::NullArgument("client_ts") | SyncError::InfiniteTimestamp { .. } => {
                Some("Send the time at which the device made the change.")
            }
            SyncError::NullArgument("payload") => Some("Send '{}' to change nothing but the timestamp."),
            SyncError::IdMismatch { .. } => Some("Leave the key out, or send the same id in both places."),
            SyncError::TimestampKey { .. } | SyncError::GeneratedKey { .. } => {
                Some("Leave the key out of the payload.")
            }
            SyncError::NotTracked { .. } => Some("Put it under sync first with inventory_sync.track(table)."),
            SyncError::NoSingleKey { .. } => Some("Synced rows are identified by a single-column primary key."),
            SyncError::NoTimestampColumn { .. } => {
                Some("Name the write-timestamp column: inventory_sync.track(table, 'modified_at').")
            }
            SyncError::TrackingBroken { .. } => Some("Restore the column, or untrack the table and track it again."),
            SyncError::Unsettled { .. } => Some("Retry the transaction."),
            SyncError::UnknownPolicy(_) => Some("The policies are lww, field_lww, delta and server_wins."),
            SyncError::UnknownOrdering(_) => Some("The orderings are client_ts and server."),
            SyncError::BadCursor => {
                Some("Pass the cursor a previous sync_pull answered, or NULL to start from the beginning.")
            }
            SyncError::CursorExpired | SyncError::CursorFromOtherHistory => {
                Some("Discard the device's copy and pull everything again from the beginning (since = NULL).")
            }
            SyncError::BadVersion { .. } => Some(
                "Send back the version an answer or a pull gave for the row (16 hex digits), '' for a row the device creates, or NULL to write without comparing."
            ),
            SyncError::MutationWithoutClient => {
                Some("Mutation ids are unique per device: send the device's client_id too.")
            }
            SyncError::NotACluster(_) => Some(
                "On a Citus coordinator: CREATE EXTENSION citus, add the worker nodes, then call inventory_sync.distribute()."
            ),
            SyncError::NumberedOtherwise { .. } | SyncError::DroppedColumns { .. } => Some(
                "Citus made that node's copy without the columns dropped before the table was distributed: recreate the table without them (CREATE TABLE … (LIKE …), INSERT … SELECT), distribute it, then track it."
            ),
            SyncError::NotOnTheCluster { .. } => Some(
                "Distribute it by its key first (SELECT inventory_sync.distribute('t'), which colocates it with the rows of its key type), or make it a reference table; then track it."
            ),
            SyncError::KeyNotColocatable { collation: false, .. } => {
                Some("Make the key a bigint (ALTER TABLE … ALTER COLUMN … TYPE bigint), then distribute it again.")
            }
            SyncError::KeyNotColocatable { collation: true, .. } => Some(
                "Give the key the default collation (ALTER TABLE … ALTER COLUMN … TYPE text COLLATE \"default\"), then distribute it again."
            ),
            SyncError::NotColocated { .. } => Some(
                "Colocate it with the table named (SELECT alter_distributed_table('t', distribution_column => 'key', colocate_with => 'that table')), then track it."
            ),
            SyncError::NodeWithoutEra => Some(
                "A node added to the cluster after inventory_sync.distribute() gets its era when distribute() runs again."
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn messages_follow_postgres_style() {
        let all = [
            SyncError::NullArgument("id"),
            SyncError::PayloadNotObject { got: "array".into() },
            SyncError::InfiniteTimestamp { value: "infinity" },
            SyncError::IdMismatch { column: "id".into(), id: "1".into(), key: "2".into() },
            SyncError::NotTracked { table: "public.t".into() },
            SyncError::UnknownKey { key: "x".into(), table: "public.t".into() },
            SyncError::TimestampKey { key: "x".into(), table: "public.t".into() },
            SyncError::GeneratedKey { key: "x".into(), table: "public.t".into() },
            SyncError::NotATable { table: "public.t".into() },
            SyncError::NotOwner { table: "public.t".into() },
            SyncError::OwnTable { table: "public.t".into() },
            SyncError::NoSingleKey { table: "public.t".into(), columns: 0 },
            SyncError::NoSingleKey { table: "public.t".into(), columns: 2 },
            SyncError::KeyType { column: "k".into(), table: "public.t".into(), typ: "date".into() },
            SyncError::NoTimestampColumn { column: "x".into(), table: "public.t".into() },
            SyncError::BadTimestampColumn {
                column: "x".into(),
                table: "public.t".into(),
                why: "It is of type date.".into(),
            },
            SyncError::TrackingBroken { table: "public.t".into(), why: "Its key was dropped.".into() },
            SyncError::MutationWithoutClient,
            SyncError::UnknownPolicy("x".into()),
            SyncError::UnknownOrdering("x".into()),
            SyncError::NoPolicyHere { field: "id".into(), table: "public.t".into() },
            SyncError::DeltaNeedsNumber { field: "f".into(), typ: "text".into() },
            SyncError::DeltaNotANumber { field: "f".into() },
            SyncError::BaseNotObject,
            SyncError::BadVersion { given: "x".into() },
            SyncError::NotAnArray { got: "object".into() },
            SyncError::BadChange("change has no \"id\"".into()),
            SyncError::BadCursor,
            SyncError::CursorExpired,
            SyncError::CursorFromOtherHistory,
            SyncError::NodeWithoutEra,
            SyncError::NotACluster("extension \"citus\" is not installed in this database"),
            SyncError::NodeUnreachable { node: 2, message: "connection refused".into() },
            SyncError::StampMisused,
            SyncError::NumberedOtherwise { table: "public.t".into(), node: 2 },
            SyncError::NotOnTheCluster { table: "public.t".into() },
            SyncError::KeyNotColocatable { table: "public.t".into(), collation: false },
            SyncError::KeyNotColocatable { table: "public.t".into(), collation: true },
            SyncError::NotColocated { table: "public.t".into(), with: "inventory_sync.changes_text" },
            SyncError::DroppedColumns { table: "public.t".into() },
            SyncError::OutOfRange { name: "lim", range: "between 1 and 100000" },
            SyncError::MutationOfOtherUser { client_id: "c".into(), mutation_id: "m".into() },
            SyncError::Unsettled { table: "public.t".into(), rounds: 10 },
        ];
        for e in all {
            let msg = e.to_string();
            assert!(!msg.ends_with('.'), "{msg}");
            assert!(msg.chars().next().unwrap().is_lowercase(), "message must start lowercase: {msg}");
            for sentence in [e.detail(), e.hint().map(String::from)].into_iter().flatten() {
                assert!(sentence.ends_with('.'), "detail/hint must be a sentence: {sentence}");
                assert!(sentence.chars().next().unwrap().is_uppercase(), "{sentence}");
            }
        }
    }

    #[test]
    fn sqlstates() {
        assert_eq!(SyncError::NullArgument("id").sqlstate(), SqlState::NULL_VALUE_NOT_ALLOWED);
        assert_eq!(
            SyncError::IdMismatch { column: "id".into(), id: "1".into(), key: "2".into() }.sqlstate(),
            SqlState::INVALID_PARAMETER_VALUE
        );
        assert_eq!(SyncError::InfiniteTimestamp { value: "infinity" }.sqlstate(), SqlState::DATETIME_FIELD_OVERFLOW);
    }
}
