//! The known bugs the fuzz targets found (KNOWN_BUGS.md), each as a test of the correct
//! behaviour marked `#[should_panic]`: a strict xfail. While the bug is there the test passes;
//! once it is fixed the test fails ("did not panic"): then delete the test, take the bug's name
//! out of `KNOWN_BUGS` in src/lib.rs (so the targets check those inputs again), and its entry out
//! of KNOWN_BUGS.md. run.sh runs these (`cargo test --test known_bugs`).

// None open: clock_skew_overflow and delta_zero_exponent (fixed in a3a405a) and server_wins_null
// (fixed in f4e3497) were here; see KNOWN_BUGS.md. A new one goes here as, for example:
//
//     #[test]
//     #[should_panic(expected = "the panic message of the bug, or of the assertion")]
//     fn name_of_the_bug() { /* the minimized input, asserting the correct behaviour */ }
