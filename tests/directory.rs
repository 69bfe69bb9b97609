//! The directory across refreshes: ADD, UPDATE, REMOVE, exceptions that keep a listed entry,
//! and the state after each refresh.

mod common;

use common::*;

fn roster(rows: &str) -> String {
    format!("{ROSTER_HEADER}\n{rows}")
}

#[test]
fn changes_across_two_refreshes() {
    let w = minimal();
    // Action-pack partners, none due in October or November: their level stays.
    w.write(
        "partners.csv",
        &roster(
            "A,Alpha,SE,action_pack,,2024-03-01,1,no,no,yes,Alpha Learning,https://alpha.se/ms,alpha.se\n\
             B,Beta,SE,action_pack,,2024-03-01,1,no,no,yes,Beta Learning,https://www.beta.se/ms,beta.se\n\
             C,Gamma,GB,action_pack,,2024-03-01,1,no,no,yes,Gamma Learning,https://gamma.co.uk/ms,gamma.co.uk\n\
             D,Delta,DE,action_pack,,2024-03-01,1,no,no,yes,Delta Learning,https://delta.de/ms,delta.de\n\
             E,Epsilon,SE,action_pack,,2024-03-01,1,no,no,yes,=cmd,https://eps.se/,eps.se\n",
        ),
    );
    w.write("extracts/2026-09/a.csv", &format!("{EXTRACT_HEADER}\n"));
    w.write("extracts/2026-10/a.csv", &format!("{EXTRACT_HEADER}\n"));
    w.refresh("2026-10");
    assert_eq!(
        w.report("2026-10", "directory-submission-2026-10.csv"),
        "action,partner_id,directory_name,country,landing_page_url,submit_from,submit_to,visible_by\n\
         ADD,A,Alpha Learning,SE,https://alpha.se/ms,2026-10-15,2026-10-21,2026-11-07\n\
         ADD,B,Beta Learning,SE,https://www.beta.se/ms,2026-10-15,2026-10-21,2026-11-07\n\
         ADD,C,Gamma Learning,GB,https://gamma.co.uk/ms,2026-10-15,2026-10-21,2026-11-07\n\
         ADD,D,Delta Learning,DE,https://delta.de/ms,2026-10-15,2026-10-21,2026-11-07\n"
    );
    // The roster changes: A renamed, B's host in capitals only, C's URL broken, D no longer
    // enrolled, E fixed.
    w.write(
        "partners.csv",
        &roster(
            "A,Alpha,SE,action_pack,,2024-03-01,1,no,no,yes,Alpha Academy,https://alpha.se/ms,alpha.se\n\
             B,Beta,SE,action_pack,,2024-03-01,1,no,no,yes,Beta Learning,HTTPS://WWW.Beta.se/ms,beta.se\n\
             C,Gamma,GB,action_pack,,2024-03-01,1,no,no,yes,Gamma Learning,http://gamma.co.uk/ms,gamma.co.uk\n\
             D,Delta,DE,none,,,1,no,no,yes,Delta Learning,https://delta.de/ms,delta.de\n\
             E,Epsilon,SE,action_pack,,2024-03-01,1,no,no,yes,Epsilon,https://eps.se/,eps.se\n",
        ),
    );
    w.refresh("2026-11");
    assert_eq!(
        w.report("2026-11", "directory-submission-2026-11.csv"),
        "action,partner_id,directory_name,country,landing_page_url,submit_from,submit_to,visible_by\n\
         ADD,E,Epsilon,SE,https://eps.se/,2026-11-15,2026-11-21,2026-12-07\n\
         UPDATE,A,Alpha Academy,SE,https://alpha.se/ms,2026-11-15,2026-11-21,2026-12-07\n\
         REMOVE,D,Delta Learning,DE,https://delta.de/ms,2026-11-15,2026-11-21,2026-12-07\n"
    );
    // C stays listed as it was; B keeps its listing.
    let state = std::fs::read_to_string(w.output().join("state/directory/2026-11.csv")).unwrap();
    assert_eq!(
        state,
        "partner_id,directory_name,country,landing_page_url\n\
         A,Alpha Academy,SE,https://alpha.se/ms\n\
         B,Beta Learning,SE,https://www.beta.se/ms\n\
         C,Gamma Learning,GB,https://gamma.co.uk/ms\n\
         E,Epsilon,SE,https://eps.se/\n"
    );
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook(w.output().join("reports/2026-11/kpi-refresh-2026-11.xlsx"))
            .unwrap();
    use calamine::Reader;
    let exceptions = book.worksheet_range("Directory exceptions").unwrap();
    let rows: Vec<Vec<String>> = exceptions
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(
        rows[1],
        [
            "C",
            "Gamma Learning",
            "GB",
            "http://gamma.co.uk/ms",
            "url_not_https"
        ]
    );
    // Rerunning November diffs against the same baseline (October) and gives the same list.
    let before = w.report("2026-11", "directory-submission-2026-11.csv");
    w.refresh("2026-11");
    assert_eq!(
        w.report("2026-11", "directory-submission-2026-11.csv"),
        before
    );
    // Rerunning October reads only state from before October: all ADDs again.
    w.refresh("2026-10");
    assert!(w
        .report("2026-10", "directory-submission-2026-10.csv")
        .contains("ADD,A,Alpha Academy"));
}

#[test]
fn lines_of_a_delivery_after_r_minus_1_never_count() {
    let w = minimal();
    w.write(
        "extracts/2026-09/a.csv",
        &format!("{EXTRACT_HEADER}\nI1,1,2026-09-03,Invoice,P1,MOC,kit,10,10,USD\n"),
    );
    // Dated inside the window of 2026-10, but delivered in 2026-10: only 2026-11 sees it.
    w.write(
        "extracts/2026-10/a.csv",
        &format!("{EXTRACT_HEADER}\nI2,1,2026-09-20,Invoice,P1,MOC,kit,5,5,USD\n"),
    );
    w.refresh("2026-10");
    w.refresh("2026-11");
    let kpi = |month: &str| {
        let rows = csv_rows(&w.report(month, &format!("partners-{month}.csv")));
        rows.iter().find(|r| r[0] == "P1").unwrap()[10].clone()
    };
    assert_eq!(kpi("2026-10"), "10");
    assert_eq!(kpi("2026-11"), "15");
}
