//! Text in worksheet XML, escaped as Excel (and rust_xlsxwriter) escape it: `&`, `<` and `>`
//! as entities; control characters other than tab and newline, and the non-characters
//! U+FFFE and U+FFFF, as `_xHHHH_`; and a literal `_xHHHH_` in the text with its underscore
//! escaped (`_x005F_xHHHH_`), so that it reads back as written.

/// Appends `text` to `out`, escaped.
pub(super) fn push_escaped(out: &mut Vec<u8>, text: &str) {
    // (Most text needs no escape: one pass over its bytes finds out.)
    let plain = !text.bytes().any(|b| {
        matches!(b, b'&' | b'<' | b'>' | b'_' | 0xEF) || (b < 0x20 && b != b'\t' && b != b'\n')
    });
    if plain {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    for ch in with_literal_escapes_escaped(text).chars() {
        match ch {
            '&' => out.extend_from_slice(b"&amp;"),
            '<' => out.extend_from_slice(b"&lt;"),
            '>' => out.extend_from_slice(b"&gt;"),
            '\t' | '\n' => out.push(ch as u8),
            '\u{0}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}' => {
                out.extend_from_slice(format!("_x{:04X}_", ch as u32).as_bytes());
            }
            _ => {
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
}

/// `text` with the underscore of each literal `_xHHHH_` escaped as `_x005F`.
fn with_literal_escapes_escaped(text: &str) -> std::borrow::Cow<'_, str> {
    const LEN: usize = "_xHHHH_".len();
    if !text.contains("_x") {
        return text.into();
    }
    let mut escaped = text.to_string();
    // From the right, so that each insertion leaves the earlier positions in place.
    for (at, _) in text.rmatch_indices("_x") {
        let is_escape = at + LEN <= text.len()
            && text.is_char_boundary(at + LEN - 1)
            && text[at + LEN - 1..].starts_with('_')
            && text[at + 2..at + LEN - 1]
                .chars()
                .all(|c| c.is_ascii_hexdigit());
        if is_escape {
            escaped.insert_str(at, "_x005F");
        }
    }
    escaped.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        let mut out = Vec::new();
        push_escaped(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn entities_control_characters_and_literal_escapes() {
        assert_eq!(escaped("plain ünï ✓"), "plain ünï ✓");
        assert_eq!(
            escaped("a & b < c > d \"q\""),
            "a &amp; b &lt; c &gt; d \"q\""
        );
        assert_eq!(escaped("tab\tnew\nline"), "tab\tnew\nline");
        assert_eq!(escaped("\u{1}\u{d}\u{1f}"), "_x0001__x000D__x001F_");
        assert_eq!(
            escaped("\u{FFFE}\u{FFFF}\u{FFFD}"),
            "_xFFFE__xFFFF_\u{FFFD}"
        );
        assert_eq!(escaped("_x0041_"), "_x005F_x0041_");
        assert_eq!(escaped("_x_x00e9_"), "_x_x005F_x00e9_");
        assert_eq!(escaped("_x12G4_ _x123_ _x1234"), "_x12G4_ _x123_ _x1234");
        assert_eq!(escaped("snake_case"), "snake_case");
    }
}
