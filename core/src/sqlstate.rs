//! SQLSTATEs as PostgreSQL packs them (`MAKE_SQLSTATE`: six bits per character), so a code
//! passes between the core and the server without a table of names.

/// A five-character SQLSTATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SqlState(i32);

const fn six_bits(c: u8) -> i32 {
    (c.wrapping_sub(b'0') & 0x3F) as i32
}

impl SqlState {
    pub const NULL_VALUE_NOT_ALLOWED: SqlState = SqlState::new(b"22004");
    pub const INVALID_PARAMETER_VALUE: SqlState = SqlState::new(b"22023");
    pub const DATETIME_FIELD_OVERFLOW: SqlState = SqlState::new(b"22008");
    pub const UNTRANSLATABLE_CHARACTER: SqlState = SqlState::new(b"22P05");
    pub const OBJECT_NOT_IN_PREREQUISITE_STATE: SqlState = SqlState::new(b"55000");
    pub const STATEMENT_TOO_COMPLEX: SqlState = SqlState::new(b"54001");
    pub const SERIALIZATION_FAILURE: SqlState = SqlState::new(b"40001");
    pub const UNDEFINED_COLUMN: SqlState = SqlState::new(b"42703");
    pub const GENERATED_ALWAYS: SqlState = SqlState::new(b"428C9");
    pub const WRONG_OBJECT_TYPE: SqlState = SqlState::new(b"42809");
    pub const INSUFFICIENT_PRIVILEGE: SqlState = SqlState::new(b"42501");
    pub const INVALID_TABLE_DEFINITION: SqlState = SqlState::new(b"42P16");
    pub const DATATYPE_MISMATCH: SqlState = SqlState::new(b"42804");
    pub const COLLATION_MISMATCH: SqlState = SqlState::new(b"42P21");
    pub const CONNECTION_FAILURE: SqlState = SqlState::new(b"08006");
    pub const TRIGGER_PROTOCOL_VIOLATED: SqlState = SqlState::new(b"39P01");

    /// The code of its five characters (digits and upper-case letters).
    pub const fn new(code: &[u8; 5]) -> SqlState {
        SqlState(
            six_bits(code[0])
                + (six_bits(code[1]) << 6)
                + (six_bits(code[2]) << 12)
                + (six_bits(code[3]) << 18)
                + (six_bits(code[4]) << 24),
        )
    }

    /// The code as PostgreSQL packs it (`edata->sqlerrcode`).
    pub const fn from_packed(packed: i32) -> SqlState {
        SqlState(packed)
    }

    pub const fn packed(self) -> i32 {
        self.0
    }

    /// The five characters.
    pub fn text(self) -> String {
        (0..5).map(|i| (((self.0 >> (6 * i)) & 0x3F) as u8 + b'0') as char).collect()
    }

    /// Whether the error is an integrity constraint violation (class 23: NOT NULL, a foreign key,
    /// unique, CHECK, exclusion), one of the rules a table keeps.
    pub fn is_integrity_violation(self) -> bool {
        self.text().starts_with("23")
    }

    /// Whether an error is the fault of one change of a batch (bad input, a constraint, missing
    /// rights), and so becomes that change's `error` outcome. The others are about the
    /// transaction or the server, not the change: a serialization failure or deadlock (the
    /// caller retries the whole call), a cancel or statement timeout, a lock timeout, running out
    /// of resources, an internal error, a feature the server does not support (class 0A: a
    /// statement Citus cannot run would fail every change alike). Those abort the whole call, as
    /// they would a PL/pgSQL exception block that does not name them. (The batch makes one
    /// exception: a change naming a table in another database, 0A000 from reading the name.)
    pub fn belongs_to_change(self) -> bool {
        let state = self.text();
        let class = &state[..2];
        !(["08", "0A", "25", "40", "53", "57", "58", "XX"].contains(&class)
            || ["55P03", "55006"].contains(&state.as_str()))
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn codes_round_trip_and_pack_as_postgres_does() {
        for code in ["22023", "22P02", "42P01", "428C9", "40001", "XX000", "00000"] {
            let bytes: [u8; 5] = code.as_bytes().try_into().unwrap();
            assert_eq!(SqlState::new(&bytes).text(), code);
        }
        // PostgreSQL's ERRCODE_INVALID_PARAMETER_VALUE, as errcodes.h computes it.
        assert_eq!(SqlState::INVALID_PARAMETER_VALUE.packed(), 2 + (2 << 6) + (2 << 18) + (3 << 24));
    }

    #[test]
    fn integrity_violations_are_class_23() {
        for (code, violation) in
            [("23514", true), ("23502", true), ("23503", true), ("23P01", true), ("22P02", false), ("P0001", false)]
        {
            let bytes: [u8; 5] = code.as_bytes().try_into().unwrap();
            assert_eq!(SqlState::new(&bytes).is_integrity_violation(), violation, "{code}");
        }
    }

    #[test]
    fn only_the_changes_own_errors_become_outcomes() {
        for own in ["22023", "42703", "42501", "23514", "55000", "P0001", "54001", "23502"] {
            let bytes: [u8; 5] = own.as_bytes().try_into().unwrap();
            assert!(SqlState::new(&bytes).belongs_to_change(), "{own}");
        }
        for other in ["40001", "40P01", "57014", "55P03", "53200", "XX000", "25006", "57P01", "55006", "0A000"] {
            let bytes: [u8; 5] = other.as_bytes().try_into().unwrap();
            assert!(!SqlState::new(&bytes).belongs_to_change(), "{other}");
        }
    }
}
