//! How the workbook's sheets look on screen and on paper: the columns frozen with the header,
//! the "number stored as text" warnings Excel must not raise on ID and raw-text cells, the
//! print setup, and the Summary charts' labels and status colours.
//!
//! See docs/rules.md §13.3 and §13.5.

use rust_xlsxwriter::{
    Chart, ChartDataLabel, ChartFormat, ChartPoint, ChartSolidFill, ChartType, IgnoreError,
    Workbook, Worksheet, XlsxError,
};

/// The deflate level of every workbook's ZIP container. Level 2 deflates about twice as fast
/// as the usual 6 for files about a quarter larger; level 1 is a little faster again but makes
/// files a third larger again (all measured in the README's "Performance").
pub const ZIP_LEVEL: u8 = 2;

/// A new, empty workbook, deflated at [`ZIP_LEVEL`].
pub fn new_workbook() -> Workbook {
    let mut book = Workbook::new();
    book.set_zip_compression_level(ZIP_LEVEL);
    book
}

/// The colours of a status, as the sheets' conditional formats show it (fill, font).
pub const BAD: (&str, &str) = ("#F8CBAD", "#9C0006");
pub const WARN: (&str, &str) = ("#FFEB9C", "#9C5700");
pub const GOOD: (&str, &str) = ("#C6EFCE", "#006100");
/// The bar colour of a status the sheets do not colour.
const PLAIN: &str = "#BDD7EE";

/// The fill a status value has on the sheets (`None`: not coloured).
pub fn status_fill(value: &str) -> Option<&'static str> {
    match value {
        "lapse" | "none" => Some(BAD.0),
        "downgrade" | "at_risk" => Some(WARN.0),
        "upgrade_eligible" => Some(GOOD.0),
        _ => None,
    }
}

/// The columns frozen with the header: Partner ID, and Partner name after it, on sheets wider
/// than a screen's few columns; none elsewhere.
pub fn frozen_columns(header: &[String]) -> u16 {
    if header.len() <= 6 || header.first().map(String::as_str) != Some("Partner ID") {
        return 0;
    }
    if header.get(1).map(String::as_str) == Some("Partner name") {
        2
    } else {
        1
    }
}

/// Frozen header (and ID columns), no "number stored as text" warnings on the data (IDs and
/// raw values are text on purpose; numbers are written as numbers), and a print setup:
/// landscape, one page wide (the Summary on one page), the header row on every page.
pub fn sheet(ws: &mut Worksheet, header: &[String], data_rows: u32) -> Result<(), XlsxError> {
    ws.set_freeze_panes(1, frozen_columns(header))?;
    let last_col = header.len().saturating_sub(1) as u16;
    ws.ignore_error_range(
        1,
        0,
        data_rows.max(1),
        last_col,
        IgnoreError::NumberStoredAsText,
    )?;
    let summary = header.first().map(String::as_str) == Some("Group");
    ws.set_landscape()
        .set_print_fit_to_pages(1, if summary { 1 } else { 0 });
    ws.set_repeat_rows(0, 0)?;
    Ok(())
}

/// A bar chart of the Summary rows `first..=last` (items in column 1, counts in column 2),
/// each bar labelled with its count and coloured as the sheets colour its status.
pub fn summary_chart(title: &str, first: u32, last: u32, items: &[String]) -> Chart {
    let mut chart = Chart::new(ChartType::Bar);
    let points: Vec<ChartPoint> = items
        .iter()
        .map(|item| {
            let colour = status_fill(item).unwrap_or(PLAIN);
            ChartPoint::new().set_format(
                ChartFormat::new().set_solid_fill(ChartSolidFill::new().set_color(colour)),
            )
        })
        .collect();
    chart
        .add_series()
        .set_name(title)
        .set_categories(("Summary", first, 1, last, 1))
        .set_values(("Summary", first, 2, last, 2))
        .set_data_label(ChartDataLabel::new().show_value())
        .set_points(&points);
    chart.title().set_name(title);
    chart.legend().set_hidden();
    // A filter on the Summary sheet hides no bar.
    chart.show_hidden_data();
    // Bars run bottom-up; reversed, they read top-down in the table's order.
    chart.y_axis().set_reverse();
    chart
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn wide_partner_sheets_keep_id_and_name_in_view() {
        let partners = names(&["Partner ID", "Partner name", "Country", "a", "b", "c", "d"]);
        assert_eq!(frozen_columns(&partners), 2);
        let monthly = names(&["Partner ID", "Category", "1", "2", "3", "4", "5"]);
        assert_eq!(frozen_columns(&monthly), 1);
        assert_eq!(
            frozen_columns(&names(&["Partner ID", "Directory name", "Country"])),
            0
        );
        assert_eq!(
            frozen_columns(&names(&["Action", "Partner ID", "a", "b", "c", "d", "e"])),
            0
        );
    }

    #[test]
    fn statuses_have_the_sheets_colours() {
        assert_eq!(status_fill("lapse"), Some("#F8CBAD"));
        assert_eq!(status_fill("downgrade"), Some("#FFEB9C"));
        assert_eq!(status_fill("at_risk"), Some("#FFEB9C"));
        assert_eq!(status_fill("upgrade_eligible"), Some("#C6EFCE"));
        assert_eq!(status_fill("renew"), None);
    }
}
