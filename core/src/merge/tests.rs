//! The merge rules' tests: examples, and properties over every arrival order.

use super::*;
use proptest::prelude::*;
use serde_json::json;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn clock(ts: i64, by: Option<&str>) -> Clock {
    Clock { ts, by: by.map(str::to_string) }
}

/// A write as it arrives: its clock, fields and base.
type Arrival = (Clock, Map<String, Value>, Option<Map<String, Value>>);

/// Apply writes in order, from no row.
fn replay(writes: &[Arrival], policy: &dyn Fn(&str) -> Policy) -> Option<Stored> {
    let mut state: Option<Stored> = None;
    for (c, payload, base) in writes {
        let w = Incoming { clock: c.clone(), payload, base: base.as_ref() };
        let m = merge(state.as_ref(), &w, policy).unwrap();
        state = Some(Stored {
            fields: m.fields,
            row: m.row,
            clocks: m.clocks,
            deleted: false,
            implicit_clocks: true,
            floor: m.floor,
        });
    }
    state
}

#[test]
fn the_laptops_story_with_delta_ends_at_13() {
    let policy = |f: &str| if f == "stock" { Policy::Delta } else { Policy::Lww };
    let start = replay(&[(clock(9, None), obj(json!({"name": "Laptops", "stock": 10})), None)], &policy).unwrap();
    // B: 10 -> 15 at 10:05; A: 10 -> 8 at 10:00, arriving later.
    let b_payload = obj(json!({"stock": 15}));
    let b_base = obj(json!({"stock": 10}));
    let b =
        merge(Some(&start), &Incoming { clock: clock(1005, None), payload: &b_payload, base: Some(&b_base) }, policy)
            .unwrap();
    let after_b =
        Stored { fields: b.fields, row: b.row, clocks: b.clocks, deleted: false, implicit_clocks: true, floor: None };
    let a_payload = obj(json!({"stock": 8}));
    let a =
        merge(Some(&after_b), &Incoming { clock: clock(1000, None), payload: &a_payload, base: Some(&b_base) }, policy)
            .unwrap();
    assert_eq!(a.fields["stock"], json!(13));
    assert_eq!(a.status, Status::Applied);
}

#[test]
fn field_lww_keeps_edits_of_different_fields() {
    let policy = |_: &str| Policy::FieldLww;
    let start = replay(&[(clock(1, None), obj(json!({"stock": 10, "price": 5})), None)], &policy).unwrap();
    let price = obj(json!({"price": 6}));
    let p = merge(Some(&start), &Incoming { clock: clock(3, None), payload: &price, base: None }, policy).unwrap();
    let after =
        Stored { fields: p.fields, row: p.row, clocks: p.clocks, deleted: false, implicit_clocks: true, floor: None };
    let stock = obj(json!({"stock": 8}));
    let s = merge(Some(&after), &Incoming { clock: clock(2, None), payload: &stock, base: None }, policy).unwrap();
    assert_eq!(s.fields, obj(json!({"stock": 8, "price": 6})));
    assert_eq!(s.row, clock(3, None), "the row keeps its newest clock");
    // Under row-level lww the older write would have lost entirely.
    let lww =
        merge(Some(&after), &Incoming { clock: clock(2, None), payload: &stock, base: None }, |_| Policy::Lww).unwrap();
    assert_eq!(lww.status, Status::Conflict);
}

#[test]
fn a_tracked_column_never_written_has_no_clock() {
    let stored = Stored {
        fields: obj(json!({"stock": 0, "sku": ""})),
        row: clock(9, None),
        clocks: Map::new(),
        deleted: false,
        implicit_clocks: false,
        floor: None,
    };
    let payload = obj(json!({"stock": 5, "sku": "A"}));
    let m = merge(Some(&stored), &Incoming { clock: clock(1, None), payload: &payload, base: None }, |f| {
        if f == "sku" {
            Policy::ServerWins
        } else {
            Policy::FieldLww
        }
    })
    .unwrap();
    assert_eq!((m.status, m.fields), (Status::Applied, obj(json!({"stock": 5, "sku": "A"}))));
    assert_eq!(m.row, clock(9, None));
}

#[test]
fn merged_answers_list_both_sides() {
    let policy = |f: &str| if f == "sku" { Policy::ServerWins } else { Policy::FieldLww };
    let start = replay(&[(clock(1, None), obj(json!({"sku": "A-1", "stock": 1})), None)], &policy).unwrap();
    let payload = obj(json!({"sku": "B-2", "stock": 2}));
    let m = merge(Some(&start), &Incoming { clock: clock(5, None), payload: &payload, base: None }, policy).unwrap();
    assert_eq!((m.status, m.applied, m.lost), (Status::Merged, vec!["stock".to_string()], vec!["sku".to_string()]));
    assert_eq!(m.fields, obj(json!({"sku": "A-1", "stock": 2})));
}

#[test]
fn a_delta_without_base_falls_back_to_lww() {
    let policy = |_: &str| Policy::Delta;
    let start = replay(&[(clock(5, None), obj(json!({"stock": 10})), None)], &policy).unwrap();
    let payload = obj(json!({"stock": 3}));
    let older =
        merge(Some(&start), &Incoming { clock: clock(4, None), payload: &payload, base: None }, policy).unwrap();
    assert_eq!((older.status, older.without_base.clone()), (Status::Conflict, vec!["stock".to_string()]));
    let bad = obj(json!({"stock": "x"}));
    let base = obj(json!({"stock": 1}));
    assert_eq!(
        merge(Some(&start), &Incoming { clock: clock(6, None), payload: &bad, base: Some(&base) }, policy),
        Err(MergeError::NotANumber { field: "stock".into() })
    );
}

#[test]
fn a_delete_beats_older_field_edits_after_the_row_came_back() {
    let policy = |_: &str| Policy::FieldLww;
    let start = replay(&[(clock(1, None), obj(json!({"f1": "s", "f2": "s"})), None)], &policy).unwrap();
    let tombstone = Stored { deleted: true, row: clock(2, None), fields: Map::new(), clocks: Map::new(), ..start };
    // A write at 3 brings the row back with f1; f2, older than the delete (1.5), must lose.
    let back = merge(
        Some(&tombstone),
        &Incoming { clock: clock(3, None), payload: &obj(json!({"f1": "A"})), base: None },
        policy,
    )
    .unwrap();
    assert_eq!(back.floor, Some(clock(2, None)));
    let now = Stored {
        fields: back.fields,
        row: back.row,
        clocks: back.clocks,
        deleted: false,
        implicit_clocks: true,
        floor: back.floor,
    };
    let old = merge(
        Some(&now),
        &Incoming { clock: clock(1, Some("z")), payload: &obj(json!({"f2": "B"})), base: None },
        policy,
    )
    .unwrap();
    assert_eq!((old.status, old.lost), (Status::Conflict, vec!["f2".to_string()]));
    // Newer than the delete, it applies.
    let new =
        merge(Some(&now), &Incoming { clock: clock(4, None), payload: &obj(json!({"f2": "B"})), base: None }, policy)
            .unwrap();
    assert_eq!(new.status, Status::Applied);
}

#[test]
fn server_wins_null_is_no_value_in_either_order() {
    let policy = |_: &str| Policy::ServerWins;
    let value = (clock(2, Some("dev-b")), obj(json!({"a": true})), None);
    let null = (clock(1, Some("dev-a")), obj(json!({"a": null})), None);
    let one = replay(&[value.clone(), null.clone()], &policy).unwrap();
    let other = replay(&[null, value], &policy).unwrap();
    assert_eq!(one.fields, other.fields);
    assert_eq!(one.fields, obj(json!({"a": true})));
}

#[test]
fn a_delta_ending_at_zero_with_an_exponent_is_zero() {
    let base: Value = serde_json::from_str("8e+38").unwrap();
    assert_eq!(apply_delta(None, &json!(0), &base, "a"), Ok(json!(0)));
}

#[test]
fn a_delta_field_never_takes_a_non_number() {
    let policy = |f: &str| if f == "stock" { Policy::Delta } else { Policy::Lww };
    let bad = obj(json!({"stock": "many", "name": "x"}));
    let refused = Err(MergeError::NotANumber { field: "stock".into() });
    // Creating the row, and without a base (decided as lww), alike.
    assert_eq!(merge(None, &Incoming { clock: clock(1, None), payload: &bad, base: None }, policy), refused);
    let start = replay(&[(clock(1, None), obj(json!({"stock": 10})), None)], &policy).unwrap();
    assert_eq!(merge(Some(&start), &Incoming { clock: clock(2, None), payload: &bad, base: None }, policy), refused);
    // Null clears it; numbers merge.
    let null = obj(json!({"stock": null}));
    assert!(merge(Some(&start), &Incoming { clock: clock(2, None), payload: &null, base: None }, policy).is_ok());
}

#[test]
fn ties_are_ordered_by_client_id() {
    assert!(clock(1, Some("b")).beats(&clock(1, Some("a"))));
    assert!(!clock(1, Some("a")).beats(&clock(1, Some("b"))));
    assert!(clock(1, Some("a")).beats(&clock(1, Some("a"))));
    assert!(clock(1, None).beats(&clock(1, Some("a"))), "without a client id, equal is not newer");
    assert!(!clock(0, Some("z")).beats(&clock(1, None)));
}

#[test]
fn decimals_keep_their_digits() {
    let v = apply_delta(
        Some(&serde_json::from_str("10.25").unwrap()),
        &serde_json::from_str("8.10").unwrap(),
        &serde_json::from_str("10.05").unwrap(),
        "p",
    )
    .unwrap();
    assert_eq!(v.to_string(), "8.30");
    let big =
        apply_delta(Some(&serde_json::from_str("123456789012345678901234567890").unwrap()), &json!(1), &json!(0), "p")
            .unwrap();
    assert_eq!(big.to_string(), "123456789012345678901234567891");
}

type Write = (Clock, Map<String, Value>, Option<Map<String, Value>>);

fn writes() -> impl Strategy<Value = Vec<Write>> {
    let field = prop::sample::select(vec!["a", "b", "c"]);
    let one = (
        0i64..6,
        prop::option::of(prop::sample::select(vec!["p1", "p2", "p3"])),
        prop::collection::btree_map(field, -50i64..50, 0..3),
    );
    prop::collection::vec(one, 1..6).prop_map(|ws| {
        ws.into_iter()
            .map(|(ts, by, fields)| {
                let payload: Map<String, Value> = fields.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
                let base: Map<String, Value> = fields.keys().map(|k| (k.to_string(), json!(0))).collect();
                (clock(ts, by.map(str::to_string).as_deref()), payload, Some(base))
            })
            .collect()
    })
}

/// Writes from distinct devices (so every clock is distinct), with frequent equal timestamps.
fn device_writes() -> impl Strategy<Value = Vec<Write>> {
    writes().prop_map(|ws| {
        ws.into_iter()
            .enumerate()
            .map(|(i, (c, payload, base))| (clock(c.ts % 3, Some(&format!("device-{i}"))), payload, base))
            .collect()
    })
}

proptest! {
    #[test]
    // (Row-level lww with partial payloads is not order-independent, by design: an older write
    // of one key applies if it arrives before a newer write of another key, and loses after.)
    fn every_arrival_order_converges(ws in device_writes(), seed in any::<u64>(),
                                     policies in prop::collection::vec(prop::sample::select(vec![Policy::FieldLww, Policy::ServerWins]), 3)) {
        let policy = |f: &str| policies[(f.as_bytes()[0] - b'a') as usize];
        let first = replay(&ws, &policy).map(|s| s.fields);
        let mut shuffled = ws.clone();
        let mut rng = seed;
        for i in (1..shuffled.len()).rev() {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (rng >> 33) as usize % (i + 1));
        }
        prop_assert_eq!(replay(&shuffled, &policy).map(|s| s.fields), first);
    }

    #[test]
    fn deltas_add_up_in_any_order(start in -100i64..100, deltas in prop::collection::vec((-50i64..50, 0i64..20), 1..8), seed in any::<u64>()) {
        let policy = |_: &str| Policy::Delta;
        let mut ws: Vec<Write> = vec![(clock(0, Some("p0")), obj(json!({"a": start})), None)];
        for (i, (d, ts)) in deltas.iter().enumerate() {
            // The device started from some value it had seen (here: 100) and moved by d.
            ws.push((clock(*ts, Some(&format!("d{i}"))), obj(json!({"a": 100 + d})), Some(obj(json!({"a": 100})))));
        }
        let mut rng = seed;
        for i in (2..ws.len()).rev() {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ws.swap(i, 1 + (rng >> 33) as usize % i);
        }
        let end = replay(&ws, &policy).unwrap();
        prop_assert_eq!(end.fields["a"].clone(), json!(start + deltas.iter().map(|(d, _)| d).sum::<i64>()));
    }

    #[test]
    fn repeating_a_write_changes_nothing_except_deltas(ws in writes(),
                                                       policies in prop::collection::vec(prop::sample::select(vec![Policy::FieldLww, Policy::ServerWins, Policy::Lww]), 3)) {
        let policy = |f: &str| policies[(f.as_bytes()[0] - b'a') as usize];
        let once = replay(&ws, &policy);
        let mut twice = ws.clone();
        twice.push(ws.last().unwrap().clone());
        prop_assert_eq!(replay(&twice, &policy).map(|s| s.fields), once.map(|s| s.fields));
    }
}
