//! Building the browser's HTML: markup written by this module is static,
//! every value from the store or the request goes through [`escape`].

use std::fmt::Write as _;

/// A page being written. Markup can only be added as `&'static str`
/// ([`Html::raw`]): whatever comes from data or from a request is text
/// ([`Html::text`], [`Html::display`]) and is escaped, so no stored value
/// can open an element or an attribute.
#[derive(Debug, Default)]
pub(super) struct Html(String);

impl Html {
    /// Static markup, as written.
    pub(super) fn raw(&mut self, markup: &'static str) -> &mut Html {
        self.0.push_str(markup);
        self
    }

    /// `text`, escaped for an element's content or a quoted attribute.
    pub(super) fn text(&mut self, text: &str) -> &mut Html {
        escape(text, &mut self.0);
        self
    }

    /// A value's `Display`, escaped.
    pub(super) fn display(&mut self, value: impl std::fmt::Display) -> &mut Html {
        let mut text = String::new();
        let _ = write!(text, "{value}");
        self.text(&text)
    }

    /// The page written so far.
    pub(super) fn into_string(self) -> String {
        self.0
    }
}

/// Appends `text` to `out` with the five characters that mean something
/// in HTML content or in a quoted attribute replaced by references.
pub(super) fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// The style of every page: small, inline (the page loads nothing else).
const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f7f8fa}\
header{display:flex;gap:1.5em;align-items:center;padding:.6em 1.2em;background:#1d2330;color:#fff}\
header a{color:#fff;text-decoration:none;font-weight:600}\
header form{margin-left:auto}\
header input{width:24em;padding:.25em .4em;font:inherit}\
main{padding:1em 1.2em}\
h1{font-size:1.3em;margin:.2em 0 .6em}\
table{border-collapse:collapse;width:100%;background:#fff}\
th,td{border:1px solid #d8dce3;padding:.3em .5em;text-align:left;vertical-align:top}\
th{background:#eef0f4}\
td.num{text-align:right;font-variant-numeric:tabular-nums}\
code,pre{font:12px/1.35 ui-monospace,monospace}\
pre{margin:0;white-space:pre-wrap;word-break:break-all}\
dl{margin:0;display:grid;grid-template-columns:max-content 1fr;gap:.15em .8em}\
dt{font-weight:600}dd{margin:0}\
.opaque{color:#8a5a00}\
.status{padding:.6em .8em;margin:0 0 1em;border-radius:4px}\
.ok{background:#e3f4e6;border:1px solid #8fcf9b}\
.broken{background:#fbe4e4;border:1px solid #e39b9b}\
.unchecked{background:#fdf3dc;border:1px solid #e6c77a}\
nav.pages{margin:.8em 0;display:flex;gap:1em}\
p.meta{color:#5a6272;margin:.2em 0 .8em}";

/// A whole page: the header with the log link and the search form,
/// `title` as heading, then `body`. `searched` fills the search box.
pub(super) fn page(name: &str, title: &str, searched: &str, body: &Html) -> String {
    let mut html = Html::default();
    html.raw("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
        .raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
        .raw("<title>")
        .text(title)
        .raw(" · ")
        .text(name)
        .raw("</title><style>")
        .raw(STYLE)
        .raw("</style></head><body><header><a href=\"/\">")
        .text(name)
        .raw(": notification log</a>")
        .raw("<form method=\"get\" action=\"/search\" role=\"search\">")
        .raw("<input name=\"id\" placeholder=\"aggregate id (UUID)\" aria-label=\"aggregate id\" value=\"")
        .text(searched)
        .raw("\"> <button type=\"submit\">Find</button></form></header><main><h1>")
        .text(title)
        .raw("</h1>");
    html.0.push_str(&body.0);
    html.raw("</main></body></html>\n");
    html.into_string()
}

/// `micros` since the Unix epoch as `YYYY-MM-DD HH:MM:SS.ffffff UTC`.
pub(super) fn timestamp(micros: i64) -> String {
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{fraction:06} UTC",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01, counted in
/// 400-year eras of 146,097 days that start on a 1 March.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468; // days since 0000-03-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_markup_is_not() {
        let mut html = Html::default();
        html.raw("<td title=\"")
            .text("\"><script>alert('x')</script>&")
            .raw("\">");
        assert_eq!(
            html.into_string(),
            "<td title=\"&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;\">"
        );
    }

    #[test]
    fn timestamps_are_utc_dates() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00.000000 UTC");
        assert_eq!(timestamp(-1), "1969-12-31 23:59:59.999999 UTC");
        // 2000-02-29 12:34:56.789 (a leap day of a century leap year).
        assert_eq!(
            timestamp(951_827_696_789_000),
            "2000-02-29 12:34:56.789000 UTC"
        );
        // 2026-11-29 21:43:20 and 2100-03-01 (2100 is not a leap year).
        assert_eq!(
            timestamp(1_795_988_600_000_000),
            "2026-11-29 21:43:20.000000 UTC"
        );
        assert_eq!(
            timestamp(4_107_542_400_000_000),
            "2100-03-01 00:00:00.000000 UTC"
        );
    }
}
