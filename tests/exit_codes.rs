//! Every failure path maps to its exit code (`docs/rules.md §14.2`) with a message an operator
//! can act on.

mod common;

use common::*;

fn with_delivery() -> Work {
    let w = minimal();
    w.write(
        "extracts/2026-10/a.csv",
        &format!("{EXTRACT_HEADER}\nI1,1,2026-10-01,Invoice,P1,MOC,kit,1,1,USD\n"),
    );
    w
}

#[test]
fn bad_usage_is_64() {
    let w = with_delivery();
    assert_exit(&w.run(&["run", "--refresh", "2026-13"]), 64, "not a month");
    assert_exit(
        &w.run(&["run", "--refresh", "2026-11", "--max-reject-rate", "2"]),
        64,
        "between 0 and 1",
    );
    assert_exit(
        &w.run(&["backfill", "--from", "2026-11", "--to", "2026-10"]),
        64,
        "is after",
    );
    assert_exit(&w.run(&["frobnicate"]), 64, "");
    // A month not open yet: backfill has no --force, so it does not suggest one.
    let early = w.run(&["backfill", "--from", "2026-12", "--to", "2026-12"]);
    assert_exit(&early, 75, "end the range with --to 2026-11");
    assert!(!String::from_utf8_lossy(&early.stderr).contains("--force"));
    let help = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
}

#[test]
fn program_errors_are_78_and_name_the_key() {
    let w = with_delivery();
    let bad = PROGRAM.replace("level = \"gold\"", "level = \"platinum\"");
    w.write("program.toml", &bad);
    assert_exit(
        &w.run(&["run", "--refresh", "2026-11", "--force"]),
        78,
        "requirements[2].level",
    );
    w.write(
        "program.toml",
        &PROGRAM.replace("certification = 60", "certification = -1"),
    );
    assert_exit(
        &w.run(&["run", "--refresh", "2026-11", "--force"]),
        78,
        "requirements[2].kpi.certification",
    );
    w.write(
        "program.toml",
        &PROGRAM.replace(
            "emerging = [\"BR\"]",
            "emerging = [\"BR\"]\nnordic = [\"br\"]",
        ),
    );
    assert_exit(
        &w.run(&["validate", "--refresh", "2026-11"]),
        78,
        "markets.nordic",
    );
    w.write("program.toml", "[kpi_categories\n");
    assert_exit(
        &w.run(&["run", "--refresh", "2026-11", "--force"]),
        78,
        "line 1",
    );
    assert!(
        !w.output().exists(),
        "nothing is written for a bad program.toml"
    );
}

#[test]
fn an_invalid_roster_is_65_listing_every_bad_row() {
    let w = with_delivery();
    w.write(
        "partners.csv",
        &format!("{ROSTER_HEADER}\nP1,Contoso,SE,silver,,2024-11-05,2,yes,yes,yes,,,\nP1,Again,SE,none,,,x,no,no,no,,,\n"),
    );
    let out = w.run(&["run", "--refresh", "2026-11", "--force"]);
    assert_exit(&out, 65, "row 2, column competency");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("row 3, column partner_id") && stderr.contains("row 3, column mct_count"),
        "{stderr}"
    );
    assert!(!w.output().join("reports").exists());
}

#[test]
fn missing_inputs_are_66() {
    let w = with_delivery();
    std::fs::remove_file(w.input().join("partners.csv")).unwrap();
    assert_exit(
        &w.run(&["run", "--refresh", "2026-11", "--force"]),
        66,
        "partners.csv",
    );
    std::fs::remove_file(w.input().join("program.toml")).unwrap();
    assert_exit(
        &w.run(&["run", "--refresh", "2026-11", "--force"]),
        66,
        "program.toml",
    );
    let nowhere = Work::empty();
    assert_exit(
        &nowhere.run(&["run", "--refresh", "2026-11", "--force"]),
        66,
        "input folder",
    );
}

#[test]
fn a_refresh_that_is_not_open_is_75_and_says_when_it_opens() {
    let w = with_delivery();
    let out = std::process::Command::new(BIN)
        .args(["run", "--input"])
        .arg(w.input())
        .arg("--output")
        .arg(w.output())
        .env("KPI_REFRESH_TODAY", "2026-11-14")
        .output()
        .unwrap();
    assert_exit(&out, 75, "opens on 2026-11-15");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--refresh 2026-10 --force"));
    let out = std::process::Command::new(BIN)
        .args(["run", "--input"])
        .arg(w.input())
        .arg("--output")
        .arg(w.output())
        .env("KPI_REFRESH_TODAY", "2026-11-15")
        .output()
        .unwrap();
    assert_success(&out);
    assert_exit(&w.run(&["run", "--refresh", "2026-10"]), 75, "past month");
}

#[test]
fn a_held_lock_is_75_naming_the_holder() {
    let w = with_delivery();
    let dir = w.output().join(".kpi-refresh");
    std::fs::create_dir_all(&dir).unwrap();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .unwrap();
    file.try_lock().unwrap();
    std::fs::write(
        dir.join("lock"),
        "pid 4242, started 2026-11-15 06:00:00 +0000",
    )
    .unwrap();
    assert_exit(
        &w.run(&["run", "--refresh", "2026-11", "--force"]),
        75,
        "pid 4242",
    );
    drop(file);
    // Another test's child process may still hold a copy of the descriptor between its fork
    // and its exec: wait until nothing holds the lock any more.
    let free = (0..200).any(|_| {
        let f = std::fs::File::open(dir.join("lock")).unwrap();
        let free = f.try_lock().is_ok();
        if !free {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        free
    });
    assert!(free, "the lock stays held after its holder let go");
    // The lock of a finished (or killed) holder never blocks.
    assert_success(&w.run(&["run", "--refresh", "2026-11", "--force"]));
}

#[test]
fn an_unwritable_output_is_73() {
    let w = with_delivery();
    std::fs::write(w.dir.path().join("output"), "a file, not a folder").unwrap();
    assert_exit(
        &w.run(&["run", "--refresh", "2026-11", "--force"]),
        73,
        "output",
    );
}
