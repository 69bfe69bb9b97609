//! XLSX extracts. The first byte chooses how the rest is used: as the raw bytes of the file
//! (a broken or hostile ZIP), or as tab-separated rows written into a real workbook, so that
//! the fuzzer reaches the cell reading behind the ZIP layer. Either way the reader gives a
//! frame with one row per data row, or an input error (exit 65) naming the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

/// Writes `text` (rows split on newlines, cells on tabs) as a workbook. A cell that reads as a
/// number is written as a number, with a date format when it starts with `@`; a row starting
/// with `>` is moved down by the number after it, to reach far rows and sparse sheets.
fn workbook(text: &str) -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let date = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
    let mut row: u32 = 0;
    for line in text.split('\n').take(200) {
        let mut line = line;
        if let Some(rest) = line.strip_prefix('>') {
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            row = row.saturating_add(digits.parse::<u32>().unwrap_or(0) % 1_048_000);
            line = &rest[digits.len()..];
        }
        if row >= 1_048_576 {
            break;
        }
        for (col, cell) in line.split('\t').take(200).enumerate() {
            let col = col as u16;
            let written =
                if let Some(n) = cell.strip_prefix('@').and_then(|c| c.parse::<f64>().ok()) {
                    sheet.write_number_with_format(row, col, n, &date)
                } else if let Ok(n) = cell.parse::<f64>() {
                    sheet.write_number(row, col, n)
                } else if cell == "TRUE" || cell == "FALSE" {
                    sheet.write_boolean(row, col, cell == "TRUE")
                } else {
                    sheet.write_string(row, col, cell)
                };
            if written.is_err() {
                return Vec::new();
            }
        }
        row += 1;
    }
    book.save_to_buffer().unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    common::allow_caught_xlsx_panics();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        workbook(&String::from_utf8_lossy(rest))
    };
    common::check_extract("extract.xlsx", &bytes);
});
