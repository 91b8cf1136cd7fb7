// sync_pull arguments.
// Included into the `tests` schema module (src/tests/mod.rs).

fn pull(since: Option<&str>, lim: i32) -> Value {
    Spi::get_one_with_args::<pgrx::JsonB>("SELECT inventory_sync.sync_pull($1, $2)", &[since.into(), lim.into()])
        .unwrap()
        .unwrap()
        .0
}

#[pg_test]
fn pull_refuses_bad_arguments() {
    setup();
    // A transaction's own changes are above its snapshot's horizon, so a pull inside the
    // writing transaction (as every #[pg_test] is) sees none of them; the feed itself is
    // tested with committed transactions in pg_regress and the concurrency tests.
    upsert(1, "{}", "2024-03-01 10:00+00");
    // The cursor: the start of era 1 ("3:0:1:2^48:0:": purge epoch 0, never purged; era 1, which
    // the write started; its first position, table 0, no row).
    assert_eq!(pull(None, 10), json!({"changes": [], "cursor": "MzowOjE6MjgxNDc0OTc2NzEwNjU2OjA6", "has_more": false}));
    for (stmt, want) in [
        ("SELECT inventory_sync.sync_pull('not a cursor')", "22023"),
        ("SELECT inventory_sync.sync_pull(NULL, 0)", "22023"),
        ("SELECT inventory_sync.sync_pull(NULL, 100001)", "22023"),
        ("SELECT inventory_sync.sync_pull(NULL, NULL)", "22004"),
        ("SELECT inventory_sync.purge_tombstones('-1 day')", "22023"),
        ("SELECT inventory_sync.purge_tombstones(NULL)", "22004"),
    ] {
        let (state, _) = sqlstate_of(stmt);
        assert_eq!(state, want, "{stmt}");
    }
}

// ---- beyond last-write-wins ----

// ---- eras written together (a Citus cluster's nodes; here made up, one server) ----

/// Made-up eras of a cluster, as `distribute()` records them: one per node, all of one cohort.
/// The nodes other than this one are made up (other system identifiers), so they answer for no
/// horizon: their eras are read as finished. Dropping the eras table's cached era is what
/// distribute() does too.
fn record_cohort(eras: &[(i32, bool)]) {
    for &(era, mine) in eras {
        let system = if mine { "(SELECT system_identifier FROM pg_control_system())" } else { "4242" };
        exec(&format!(
            "INSERT INTO inventory_sync.eras (era, cohort, system_identifier, database_oid, previous_end)
             SELECT {era}, {cohort}, {system}, (SELECT oid FROM pg_database WHERE datname = current_database()),
                    (SELECT COALESCE(max(position), 0) FROM inventory_sync.inventory)",
            cohort = eras[0].0
        ));
    }
    exec("ALTER TABLE inventory_sync.eras SET (fillfactor = 100)");
}

/// A change stored in era `era` by a node that is not this one.
fn store_in_era(id: i64, era: i64, xid: i64) {
    exec(&format!(
        "INSERT INTO inventory_sync.inventory (id, data, updated_at, position)
         VALUES ({id}, '{{}}', '2024-03-01 10:00+00', ({era}::bigint << 48) + {xid})"
    ));
}

fn pulled_ids(page: &Value) -> Vec<i64> {
    page["changes"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect()
}

#[pg_test]
fn a_node_without_an_era_in_a_cluster_cohort_refuses_to_write() {
    setup();
    upsert(1, "{}", "2024-03-01 10:00+00");
    record_cohort(&[(2, false), (3, false)]);
    let (state, message) = sqlstate_of("SELECT inventory_sync.sync_upsert(2, '{}', '2024-03-01 10:00+00')");
    assert_eq!((state.as_str(), message.as_str()), ("55000", "this node has no era to write in"));
    assert_eq!(count("SELECT count(*) FROM inventory_sync.inventory WHERE id = 2"), 0);
    // Given an era of the cohort, it writes there.
    record_cohort(&[(4, true)]);
    exec("UPDATE inventory_sync.eras SET cohort = 2 WHERE era = 4");
    exec("ALTER TABLE inventory_sync.eras SET (fillfactor = 100)");
    upsert(2, "{}", "2024-03-01 10:00+00");
    assert_eq!(count("SELECT position >> 48 FROM inventory_sync.inventory WHERE id = 2"), 4);
}

#[pg_test]
fn a_pull_walks_each_era_of_a_cohort_and_its_cursor_keeps_a_position_in_each() {
    setup();
    // Era 1: a history from before (another cluster's, finished), two changes in it.
    exec(
        "INSERT INTO inventory_sync.eras (era, cohort, system_identifier, database_oid, previous_end)
         VALUES (1, 1, 4141, 1, 0)",
    );
    store_in_era(10, 1, 500);
    store_in_era(11, 1, 501);
    // This server writes in era 2; the made-up node in era 3 (finished: it answers for no
    // horizon), so the walk is two ranges: eras 0 to 2 up to this server's horizon, and era 3.
    record_cohort(&[(2, true), (3, false)]);
    store_in_era(30, 3, 700);
    store_in_era(31, 3, 700);
    store_in_era(32, 3, 900);
    // This transaction's own write (era 2) is above its snapshot's horizon: not handed out here.
    upsert(20, "{}", "2024-03-01 10:00+00");
    assert_eq!(count("SELECT position >> 48 FROM inventory_sync.inventory WHERE id = 20"), 2);
    let mut cursor: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let page = pull(cursor.as_deref(), 1);
        pages.push((pulled_ids(&page), page["cursor"].clone()));
        cursor = Some(page["cursor"].as_str().unwrap().to_string());
        if page["has_more"] == json!(false) {
            break;
        }
    }
    // A page of one: the walk stops inside a finished era (1) and goes on there, then in era 3.
    let want: Vec<Vec<i64>> = [10, 11, 30, 31, 32].iter().map(|id| vec![*id]).collect();
    assert_eq!(pages.iter().map(|p| p.0.clone()).collect::<Vec<_>>(), want, "{pages:?}");
    // The cursor keeps a position in era 3 while era 2 goes on: form 4, floor 2.
    let text = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, cursor.as_deref().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(text, format!("4:0:2:[[{},0,\"32\"]]", (3i64 << 48) + 900), "{pages:?}");
    // A later change of era 3 is found after it; nothing before it comes again.
    store_in_era(33, 3, 950);
    assert_eq!(pulled_ids(&pull(cursor.as_deref(), 10)), vec![33]);
    // A part in an era this database does not have, or beyond the eras, is not a cursor.
    for bad in [format!("4:0:2:[[{},0,\"1\"]]", (9i64 << 48) + 1), format!("3:0:9:{}:0:", 9i64 << 48)] {
        let bad = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bad);
        let (state, _) = sqlstate_of(&format!("SELECT inventory_sync.sync_pull('{bad}')"));
        assert_eq!(state, "22023", "{bad}");
    }
}

#[pg_test]
fn a_purge_keeps_a_horizon_per_era_and_a_cursor_must_have_passed_each() {
    setup();
    record_cohort(&[(2, true), (3, false)]);
    // Old tombstones in both eras (as two nodes of a cluster would hold them).
    for (id, era, xid) in [(40, 3, 800), (41, 2, 50)] {
        store_in_era(id, era, xid);
        exec(&format!("UPDATE inventory_sync.inventory SET deleted = true, changed_at = '2020-01-01' WHERE id = {id}"));
    }
    assert_eq!(count("SELECT inventory_sync.purge_tombstones('1 day')"), 2);
    assert_eq!(count("SELECT count(*) FROM inventory_sync.purge_horizon"), 2);
    let cursor = |parts: &[(i64, i64)]| {
        let list: Vec<String> = parts.iter().map(|(era, xid)| format!("[{},0,\"99\"]", (era << 48) + xid)).collect();
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, format!("4:0:2:[{}]", list.join(",")))
    };
    // Past both tombstones: goes on.
    let (state, _) = sqlstate_of(&format!("SELECT inventory_sync.sync_pull('{}')", cursor(&[(2, 60), (3, 900)])));
    assert_eq!(state, "00000");
    // Past the newest of era 3 but not of era 2, or the other way round: it may have missed one.
    for parts in [&[(3, 900)][..], &[(2, 60)][..]] {
        let (state, message) = sqlstate_of(&format!("SELECT inventory_sync.sync_pull('{}')", cursor(parts)));
        assert_eq!((state.as_str(), message.as_str()), ("55000", "cursor is older than the last tombstone purge"));
    }
}

/// `stamp_position` (which distribute() puts on the feed's tables of a Citus cluster) gives a row
/// the position of the transaction on the server that stores it, whatever position the statement
/// wrote (a coordinator writes its own); on an update only when the position is written. Anything
/// but a row trigger before insert or update of a bigint `position` is refused with 39P01.
#[pg_test]
fn stamp_position_takes_the_storing_servers_position() {
    setup();
    exec("CREATE TABLE pg_temp.feed (id int PRIMARY KEY, position bigint, note text)");
    exec("CREATE TRIGGER s BEFORE INSERT OR UPDATE OF position ON pg_temp.feed FOR EACH ROW EXECUTE FUNCTION inventory_sync.stamp_position()");
    exec("INSERT INTO pg_temp.feed VALUES (1, 7, 'a')");
    let mine = count("SELECT inventory_sync.change_position()");
    assert_eq!(count("SELECT position FROM pg_temp.feed"), mine);
    exec("UPDATE pg_temp.feed SET note = 'b', position = 8");
    assert_eq!(count("SELECT position FROM pg_temp.feed"), mine);
    exec("ALTER TABLE pg_temp.feed DISABLE TRIGGER s");
    exec("UPDATE pg_temp.feed SET position = 9");
    exec("ALTER TABLE pg_temp.feed ENABLE TRIGGER s");
    exec("UPDATE pg_temp.feed SET note = 'c'");
    assert_eq!(count("SELECT position FROM pg_temp.feed"), 9, "an update that leaves the position keeps it");
    for (table, trigger) in [
        ("(id int, position text)", "BEFORE INSERT ON pg_temp.t FOR EACH ROW"),
        ("(id int)", "BEFORE INSERT ON pg_temp.t FOR EACH ROW"),
        ("(id int, position bigint)", "AFTER INSERT ON pg_temp.t FOR EACH ROW"),
        ("(id int, position bigint)", "BEFORE INSERT ON pg_temp.t FOR EACH STATEMENT"),
    ] {
        exec("DROP TABLE IF EXISTS pg_temp.t");
        exec(&format!("CREATE TABLE pg_temp.t {table}"));
        exec(&format!("CREATE TRIGGER s {trigger} EXECUTE FUNCTION inventory_sync.stamp_position()"));
        let (state, message) = sqlstate_of("INSERT INTO pg_temp.t (id) VALUES (1)");
        assert_eq!(state, "39P01", "{table} {trigger}: {message}");
    }
}

/// Without Citus, `distribute()`, `distribute(tbl)` and `undistribute()` refuse with 55000 and
/// change nothing; `distribute(NULL)` is 22004.
#[pg_test]
fn distribute_and_undistribute_need_citus() {
    setup();
    exec("CREATE TABLE later (id bigint PRIMARY KEY, v text, updated_at timestamptz)");
    for call in ["distribute()", "undistribute()", "distribute('later')"] {
        let (state, message) = sqlstate_of(&format!("SELECT inventory_sync.{call}"));
        assert_eq!(
            (state.as_str(), message.as_str()),
            ("55000", "extension \"citus\" is not installed in this database"),
            "{call}"
        );
    }
    assert_eq!(sqlstate_of("SELECT inventory_sync.distribute(NULL::regclass)").0, "22004");
    assert_eq!(count("SELECT count(*) FROM inventory_sync.eras"), 0);
}
