//! Which tables can be synced: a single-column primary key of a supported type and a
//! `timestamptz` write-timestamp column. The extension describes a table from the catalogs; the
//! rule is here, tested without a server.

use crate::error::SyncError;
use crate::values::Shape;

/// The OIDs of the built-in types the rule names (fixed in PostgreSQL's catalog, `pg_type.dat`).
pub mod oid {
    pub const INT4: u32 = 23;
    pub const INT8: u32 = 20;
    pub const TEXT: u32 = 25;
    pub const UUID: u32 = 2950;
    pub const DATE: u32 = 1082;
    pub const TIMESTAMPTZ: u32 = 1184;
}

/// Key types a tracked table may have.
pub const KEY_TYPES: [u32; 4] = [oid::INT8, oid::INT4, oid::UUID, oid::TEXT];

/// Whether a key type is an integer. Answers show such a key as a number, and it is its row's
/// shard key itself (see `sql`), as a bigint, so that the side rows of a row of the default
/// table, or of a table Citus colocates with it, are stored on the row's own shard. A journal
/// entry of a row with any other key takes the hash of its text as shard key, PostgreSQL's
/// `hashtextextended(key, 0)` (on a Citus cluster, a key of the default table on the row's node).
pub fn integer_key(key_type: u32) -> bool {
    matches!(key_type, oid::INT8 | oid::INT4)
}

/// Where a tracked table's rows keep their feed records and mutation ids. A Citus cluster
/// colocates only tables distributed by one type (and, for text, one collation), so each key type
/// has side tables of its own, distributed with its tables, whose shard key is the key itself:
/// `bigint` for the integer keys (and the default table), `uuid`, and `text` (in the database's
/// default collation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Bigint,
    Uuid,
    Text,
}

impl Side {
    /// Every side, in the order readers take them.
    pub const ALL: [Side; 3] = [Side::Bigint, Side::Uuid, Side::Text];

    /// The side of a table whose key has type `key_type`.
    pub fn of(key_type: u32) -> Side {
        match key_type {
            oid::UUID => Side::Uuid,
            oid::TEXT => Side::Text,
            _ => Side::Bigint,
        }
    }

    /// The change feed's table of this side.
    pub const fn changes(self) -> &'static str {
        match self {
            Side::Bigint => "inventory_sync.changes",
            Side::Uuid => "inventory_sync.changes_uuid",
            Side::Text => "inventory_sync.changes_text",
        }
    }

    /// The mutation log's table of this side.
    pub const fn mutations(self) -> &'static str {
        match self {
            Side::Bigint => "inventory_sync.mutations",
            Side::Uuid => "inventory_sync.mutations_uuid",
            Side::Text => "inventory_sync.mutations_text",
        }
    }

    /// Whether this side's shard key is the key itself, of the key's type (else it is the `bigint`
    /// shard key of `integer_key`).
    pub fn keyed_by_key(self) -> bool {
        self != Side::Bigint
    }

    /// The table a table with a key of type `key_type` is colocated with on a Citus cluster, so
    /// that its rows and their side rows are on one node (see `sql::DISTRIBUTE_FIRST`): a `bigint`
    /// key with the default table, a `uuid` or `text` key with its side's feed. None for an
    /// `integer` key, which Citus cannot colocate with `bigint` columns.
    pub fn colocated_with(key_type: u32) -> Option<&'static str> {
        match key_type {
            oid::INT8 => Some("inventory_sync.inventory"),
            oid::UUID | oid::TEXT => Some(Side::of(key_type).changes()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Column {
    pub attnum: i16,
    pub name: String,
    pub quoted: String,
    /// The type's OID.
    pub typid: u32,
    pub typmod: i32,
    pub type_name: String,
    /// GENERATED ALWAYS AS (…) STORED, or GENERATED ALWAYS AS IDENTITY: cannot be written.
    pub generated: bool,
    pub shape: Shape,
}

/// How the write-timestamp column is named: by the caller of track(), or by the catalog.
#[derive(Debug, Clone, Copy)]
pub enum TsColumn<'a> {
    Name(&'a str),
    Attnum(i16),
}

/// Check that a table can be synced: a single-column primary key of a supported type and a
/// timestamptz write-timestamp column that is neither the key nor generated. Returns the
/// positions in `columns` of the key and the timestamp column. Plain Rust: unit-tested.
pub fn validate(
    table: &str,
    columns: &[Column],
    primary_key: &[i16],
    ts: TsColumn<'_>,
) -> Result<(usize, usize), SyncError> {
    let key = validate_key(table, columns, primary_key)?;
    let ts_pos = match ts {
        TsColumn::Name(name) => columns
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| SyncError::NoTimestampColumn { column: name.into(), table: table.into() })?,
        TsColumn::Attnum(attnum) => columns.iter().position(|c| c.attnum == attnum).ok_or_else(|| {
            SyncError::TrackingBroken { table: table.into(), why: "Its write-timestamp column was dropped.".into() }
        })?,
    };
    let col = &columns[ts_pos];
    let bad = |why: String| Err(SyncError::BadTimestampColumn { column: col.name.clone(), table: table.into(), why });
    if col.typid != oid::TIMESTAMPTZ {
        return bad(format!("It is of type {}; the write timestamp must be timestamp with time zone.", col.type_name));
    }
    if col.generated {
        return bad("It is a generated column.".into());
    }
    Ok((key, ts_pos))
}

/// The key part of `validate`: a single-column primary key of a supported type. Answers the key
/// column's position.
pub fn validate_key(table: &str, columns: &[Column], primary_key: &[i16]) -> Result<usize, SyncError> {
    let [key_attnum] = primary_key else {
        return Err(SyncError::NoSingleKey { table: table.into(), columns: primary_key.len() });
    };
    let key = columns
        .iter()
        .position(|c| c.attnum == *key_attnum)
        .ok_or(SyncError::NoSingleKey { table: table.into(), columns: 0 })?;
    if !KEY_TYPES.contains(&columns[key].typid) {
        return Err(SyncError::KeyType {
            column: columns[key].name.clone(),
            table: table.into(),
            typ: columns[key].type_name.clone(),
        });
    }
    Ok(key)
}

#[cfg(test)]
mod unit {
    use super::*;

    fn col(attnum: i16, name: &str, typid: u32, type_name: &str) -> Column {
        Column {
            attnum,
            name: name.into(),
            quoted: name.into(),
            typid,
            typmod: -1,
            type_name: type_name.into(),
            generated: false,
            shape: Shape::Scalar,
        }
    }

    fn products() -> Vec<Column> {
        vec![
            col(1, "id", oid::UUID, "uuid"),
            col(2, "name", oid::TEXT, "text"),
            col(3, "updated_at", oid::TIMESTAMPTZ, "timestamp with time zone"),
            col(4, "made", oid::DATE, "date"),
        ]
    }

    #[test]
    fn a_valid_table() {
        assert_eq!(validate("t", &products(), &[1], TsColumn::Name("updated_at")), Ok((0, 2)));
        assert_eq!(validate("t", &products(), &[1], TsColumn::Attnum(3)), Ok((0, 2)));
    }

    #[test]
    fn refusals_say_what_is_missing() {
        let cols = products();
        assert!(matches!(
            validate("t", &cols, &[], TsColumn::Name("updated_at")),
            Err(SyncError::NoSingleKey { columns: 0, .. })
        ));
        assert!(matches!(
            validate("t", &cols, &[1, 2], TsColumn::Name("updated_at")),
            Err(SyncError::NoSingleKey { columns: 2, .. })
        ));
        assert!(matches!(validate("t", &cols, &[4], TsColumn::Name("updated_at")), Err(SyncError::KeyType { .. })));
        assert!(matches!(
            validate("t", &cols, &[1], TsColumn::Name("modified_at")),
            Err(SyncError::NoTimestampColumn { .. })
        ));
        assert!(matches!(
            validate("t", &cols, &[1], TsColumn::Name("made")),
            Err(SyncError::BadTimestampColumn { .. })
        ));
        assert!(matches!(validate("t", &cols, &[1], TsColumn::Attnum(9)), Err(SyncError::TrackingBroken { .. })));
        let mut generated = products();
        generated[2].generated = true;
        assert!(matches!(
            validate("t", &generated, &[1], TsColumn::Name("updated_at")),
            Err(SyncError::BadTimestampColumn { .. })
        ));
        let mut ts_key = products();
        ts_key[2].typid = oid::TIMESTAMPTZ;
        assert!(matches!(validate("t", &ts_key, &[3], TsColumn::Name("updated_at")), Err(SyncError::KeyType { .. })));
    }

    #[test]
    fn every_supported_key_type() {
        for (typid, name) in [(oid::INT8, "bigint"), (oid::INT4, "integer"), (oid::UUID, "uuid"), (oid::TEXT, "text")] {
            let mut cols = products();
            cols[0].typid = typid;
            cols[0].type_name = name.into();
            assert_eq!(validate("t", &cols, &[1], TsColumn::Name("updated_at")), Ok((0, 2)), "{name}");
        }
    }
}
