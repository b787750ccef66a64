//! The browser's pages, written from what [`read`](super::read) found.

use serde_json::Value;
use uuid::Uuid;

use super::html::{Html, page, timestamp};
use super::read::{Body, ChainStatus, History, LogPage, describe_flags};

/// The most characters of one field's value a page shows.
const MAX_VALUE_CHARS: usize = 2000;

/// A page with a message: a refusal or an error.
pub(super) fn message(name: &str, title: &str, message: &str, searched: &str) -> String {
    let mut body = Html::default();
    body.raw("<p class=\"status broken\">")
        .text(message)
        .raw("</p><p><a href=\"/\">Back to the notification log</a></p>");
    page(name, title, searched, &body)
}

/// `n` as a `u64` (page sizes and counts fit).
fn wide(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// A link to `href` (static start, then a number) labelled `label`.
fn link(html: &mut Html, href: &'static str, after: Option<u64>, label: &'static str) {
    html.raw("<a href=\"").raw(href);
    if let Some(after) = after {
        html.raw("?after=").display(after);
    }
    html.raw("\">").raw(label).raw("</a>");
}

/// A page of the notification log: the notifications after `after`.
pub(super) fn log(name: &str, after: u64, page_size: usize, page_read: &LogPage) -> String {
    let step = wide(page_size);
    let mut body = Html::default();
    body.raw("<p class=\"meta\">");
    match (page_read.items.first(), page_read.items.last()) {
        (Some(first), Some(last)) => {
            body.raw("Notifications ")
                .display(first.id)
                .raw(" to ")
                .display(last.id)
                .raw(" of ")
                .display(page_read.head)
                .raw(".");
        }
        _ if page_read.head == 0 => {
            body.raw("The log is empty.");
        }
        _ => {
            body.raw("No notifications after ")
                .display(after)
                .raw("; the last is ")
                .display(page_read.head)
                .raw(".");
        }
    }
    body.raw("</p>");

    let last_shown = page_read.items.last().map_or(after, |n| n.id);
    let nav = |body: &mut Html| {
        body.raw("<nav class=\"pages\">");
        if after > 0 {
            link(body, "/", Some(0), "« first");
            link(body, "/", Some(after.saturating_sub(step)), "‹ older");
        }
        if last_shown < page_read.head {
            link(body, "/", Some(last_shown), "newer ›");
            link(body, "/", None, "newest »");
        }
        body.raw("</nav>");
    };
    nav(&mut body);

    if !page_read.items.is_empty() {
        body.raw(
            "<table id=\"log\"><thead><tr><th>#</th><th>aggregate</th><th>version</th>\
             <th>topic</th><th>size</th><th>record</th></tr></thead><tbody>",
        );
        for item in &page_read.items {
            // The history page that holds this version, with its row as anchor.
            let page_after = item.originator_version.saturating_sub(1) / step * step;
            body.raw("<tr><td class=\"num\">")
                .display(item.id)
                .raw("</td><td><a href=\"/aggregates/")
                .display(item.originator_id.hyphenated())
                .raw("?after=")
                .display(page_after)
                .raw("#v")
                .display(item.originator_version)
                .raw("\"><code>")
                .display(item.originator_id.hyphenated())
                .raw("</code></a></td><td class=\"num\">")
                .display(item.originator_version)
                .raw("</td><td>")
                .text(&item.topic)
                .raw("</td><td class=\"num\">")
                .display(item.state.len())
                .raw(" B</td><td>")
                .text(&describe_flags(&item.state))
                .raw("</td></tr>");
        }
        body.raw("</tbody></table>");
        nav(&mut body);
    }
    page(name, "Notification log", "", &body)
}

/// An aggregate's history: its chain's status, then its events after
/// `after`.
pub(super) fn history(
    name: &str,
    id: Uuid,
    after: u64,
    page_size: usize,
    history: &History,
) -> String {
    let step = wide(page_size);
    let mut body = Html::default();
    chain_status(&mut body, &history.status);
    body.raw("<p class=\"meta\">")
        .display(history.total)
        .raw(if history.total == 1 {
            " event"
        } else {
            " events"
        })
        .raw(", the last at version ")
        .display(history.last_version)
        .raw(".");
    if let (Some(first), Some(last)) = (history.rows.first(), history.rows.last()) {
        body.raw(" Versions ")
            .display(first.version)
            .raw(" to ")
            .display(last.version)
            .raw(" below.");
    } else {
        body.raw(" None after version ").display(after).raw(".");
    }
    body.raw("</p>");

    let last_shown = history.rows.last().map_or(after, |row| row.version);
    let nav = |body: &mut Html| {
        body.raw("<nav class=\"pages\">");
        if after > 0 {
            aggregate_link(body, id, 0, "« first");
            aggregate_link(body, id, after.saturating_sub(step), "‹ older");
        }
        if last_shown < history.last_version {
            aggregate_link(body, id, last_shown, "newer ›");
            let last_page = history.last_version.saturating_sub(1) / step * step;
            aggregate_link(body, id, last_page, "last »");
        }
        body.raw("</nav>");
    };
    nav(&mut body);
    if !history.rows.is_empty() {
        body.raw(
            "<table id=\"history\"><thead><tr><th>version</th><th>topic</th>\
             <th>recorded</th><th>size</th><th>record</th><th>fields</th></tr></thead><tbody>",
        );
        for row in &history.rows {
            body.raw("<tr id=\"v")
                .display(row.version)
                .raw("\"><td class=\"num\">")
                .display(row.version)
                .raw("</td><td>")
                .text(&row.topic)
                .raw("</td><td>");
            if let Body::Read {
                timestamp: at,
                event_hash,
                ..
            } = &row.body
            {
                body.text(&timestamp(*at))
                    .raw("<br><code title=\"event hash\">")
                    .text(event_hash.to_hex().get(..16).unwrap_or_default())
                    .raw("…</code>");
            }
            body.raw("</td><td class=\"num\">")
                .display(row.size)
                .raw(" B</td><td>")
                .text(&row.flags)
                .raw("</td><td>");
            match &row.body {
                Body::Read { data, .. } => fields(&mut body, data),
                Body::Encrypted => {
                    body.raw("<span class=\"opaque\">encrypted: this server has no key</span>");
                }
                Body::Unreadable(reason) => {
                    body.raw("<span class=\"opaque\">unreadable: ")
                        .text(reason)
                        .raw("</span>");
                }
            }
            body.raw("</td></tr>");
        }
        body.raw("</tbody></table>");
        nav(&mut body);
    }
    let mut title = String::from("Aggregate ");
    title.push_str(&id.hyphenated().to_string());
    page(name, &title, "", &body)
}

/// A link to a page of aggregate `id`'s history.
fn aggregate_link(html: &mut Html, id: Uuid, after: u64, label: &'static str) {
    html.raw("<a href=\"/aggregates/")
        .display(id.hyphenated())
        .raw("?after=")
        .display(after)
        .raw("\">")
        .raw(label)
        .raw("</a>");
}

/// The box that says where the chain stands.
fn chain_status(html: &mut Html, status: &ChainStatus) {
    match status {
        ChainStatus::Verified { version, head } => {
            html.raw("<p class=\"status ok\" id=\"chain\"><strong>Chain verified</strong>: versions 1 to ")
                .display(version)
                .raw(", every hash matching its record and linked to the one before. Head <code>")
                .text(&head.to_hex())
                .raw("</code></p>");
        }
        ChainStatus::Broken { version, reason } => {
            html.raw("<p class=\"status broken\" id=\"chain\"><strong>Chain broken at version ")
                .display(version)
                .raw("</strong>: ")
                .text(reason)
                .raw("</p>");
        }
        ChainStatus::Unreadable { version, reason } => {
            html.raw(
                "<p class=\"status broken\" id=\"chain\"><strong>Chain not verified: version ",
            )
            .display(version)
            .raw(" cannot be read</strong>: ")
            .text(reason)
            .raw("</p>");
        }
        ChainStatus::Unchecked { version } => {
            html.raw("<p class=\"status unchecked\" id=\"chain\"><strong>Chain not checked");
            if *version > 1 {
                html.raw(" past version ").display(version - 1);
            }
            html.raw("</strong>: the record at version ")
                .display(version)
                .raw(" is encrypted and this server has no key.</p>");
        }
    }
}

/// An event's fields: a list of names and JSON values, or the text when
/// it is not a JSON object.
fn fields(html: &mut Html, data: &[u8]) {
    match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(members)) if members.is_empty() => {
            html.raw("<em>no fields</em>");
        }
        Ok(Value::Object(members)) => {
            html.raw("<dl>");
            for (field, value) in &members {
                html.raw("<dt>")
                    .text(field)
                    .raw("</dt><dd><pre>")
                    .text(&shortened(&value.to_string()))
                    .raw("</pre></dd>");
            }
            html.raw("</dl>");
        }
        _ => {
            html.raw("<pre>")
                .text(&shortened(&String::from_utf8_lossy(data)))
                .raw("</pre>");
        }
    }
}

/// `text`, cut to [`MAX_VALUE_CHARS`] characters with a note of its length.
fn shortened(text: &str) -> String {
    match text.char_indices().nth(MAX_VALUE_CHARS) {
        None => text.to_owned(),
        Some((end, _)) => format!(
            "{}… ({} characters in all)",
            text.get(..end).unwrap_or_default(),
            text.chars().count()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_on_a_character() {
        let long = "é".repeat(MAX_VALUE_CHARS + 5);
        let cut = shortened(&long);
        assert!(cut.starts_with(&"é".repeat(MAX_VALUE_CHARS)));
        assert!(cut.ends_with(&format!("… ({} characters in all)", MAX_VALUE_CHARS + 5)));
        assert_eq!(shortened("short"), "short");
    }

    #[test]
    fn fields_are_escaped() {
        let mut html = Html::default();
        fields(&mut html, br#"{"<b>":"</pre><script>x</script>"}"#);
        let html = html.into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(html.contains("&lt;/pre&gt;&lt;script&gt;"), "{html}");
    }
}
