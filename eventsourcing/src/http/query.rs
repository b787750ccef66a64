//! The server's reading of `?after=&limit=&topics=`: every parameter
//! checked, each refusal with a reason for the 400 response.

/// The greatest notification id any backend can hold (SQL `BIGINT`).
const MAX_ID: u64 = i64::MAX.unsigned_abs();
/// At most this many topics in one request.
pub(crate) const MAX_TOPICS: usize = 64;
/// At most this many bytes in one topic.
pub(crate) const MAX_TOPIC_LEN: usize = 256;

/// A page request, checked.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PageQuery {
    /// Rows with greater ids only.
    pub(crate) after: u64,
    /// At most this many rows.
    pub(crate) limit: usize,
    /// Only rows of these topics, unless empty.
    pub(crate) topics: Vec<String>,
}

/// Reads the query's `(name, value)` pairs: `after` (default 0), `limit`
/// (default `default_limit`, from 1 to `max_limit`) and `topics` (names
/// separated by commas). Anything else, or a parameter given twice, is
/// refused with the reason.
pub(crate) fn parse_page_query(
    pairs: &[(String, String)],
    default_limit: usize,
    max_limit: usize,
) -> Result<PageQuery, String> {
    let mut after = None;
    let mut limit = None;
    let mut topics = None;
    for (name, value) in pairs {
        let slot = match name.as_str() {
            "after" => &mut after,
            "limit" => &mut limit,
            "topics" => &mut topics,
            other => {
                return Err(format!(
                    "unknown parameter `{}`: expected `after`, `limit` or `topics`",
                    shorten(other)
                ));
            }
        };
        if slot.replace(value.as_str()).is_some() {
            return Err(format!("parameter `{name}` is given more than once"));
        }
    }
    let after = match after {
        None => 0,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|&after| after <= MAX_ID)
            .ok_or_else(|| {
                format!(
                    "`after` is `{}`, not a notification id from 0 to {MAX_ID}",
                    shorten(text)
                )
            })?,
    };
    let limit = match limit {
        None => default_limit.clamp(1, max_limit.max(1)),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=max_limit).contains(limit))
            .ok_or_else(|| {
                format!(
                    "`limit` is `{}`, not a number from 1 to {max_limit}",
                    shorten(text)
                )
            })?,
    };
    let topics = match topics {
        None => Vec::new(),
        Some(text) => parse_topics(text)?,
    };
    Ok(PageQuery {
        after,
        limit,
        topics,
    })
}

/// Topic names separated by commas: each non-empty, at most
/// [`MAX_TOPIC_LEN`] bytes, without control characters; at most
/// [`MAX_TOPICS`] of them.
fn parse_topics(text: &str) -> Result<Vec<String>, String> {
    let topics: Vec<&str> = text.split(',').collect();
    if topics.len() > MAX_TOPICS {
        return Err(format!(
            "`topics` names {} topics; at most {MAX_TOPICS}",
            topics.len()
        ));
    }
    topics
        .into_iter()
        .map(|topic| {
            if topic.is_empty() {
                Err("`topics` holds an empty topic name".to_owned())
            } else if topic.len() > MAX_TOPIC_LEN {
                Err(format!(
                    "a topic name in `topics` is {} bytes long; at most {MAX_TOPIC_LEN}",
                    topic.len()
                ))
            } else if topic.chars().any(char::is_control) {
                Err(format!(
                    "topic name `{}` holds a control character",
                    topic.escape_debug()
                ))
            } else {
                Ok(topic.to_owned())
            }
        })
        .collect()
}

/// `text`, cut to a length that a reason can quote.
fn shorten(text: &str) -> String {
    const QUOTED: usize = 40;
    let mut cut: String = text.chars().take(QUOTED).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut.escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
        query
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_and_values() {
        assert_eq!(
            parse_page_query(&[], 10, 100),
            Ok(PageQuery {
                after: 0,
                limit: 10,
                topics: vec![]
            })
        );
        let query = pairs(&[("after", "7"), ("limit", "100"), ("topics", "A.B,C.D")]);
        assert_eq!(
            parse_page_query(&query, 10, 100),
            Ok(PageQuery {
                after: 7,
                limit: 100,
                topics: vec!["A.B".into(), "C.D".into()]
            })
        );
    }

    #[test]
    fn refusals_say_why() {
        let refused =
            |query: &[(&str, &str)]| parse_page_query(&pairs(query), 10, 100).unwrap_err();
        assert!(refused(&[("limit", "101")]).contains("from 1 to 100"));
        assert!(refused(&[("limit", "0")]).contains("from 1 to 100"));
        assert!(refused(&[("limit", "-1")]).contains("limit"));
        assert!(refused(&[("after", "x")]).contains("after"));
        assert!(refused(&[("after", "9223372036854775808")]).contains("after"));
        assert!(refused(&[("topics", "A,,B")]).contains("empty"));
        assert!(refused(&[("topics", "A\u{1}")]).contains("control"));
        assert!(refused(&[("topics", &"x".repeat(300))]).contains("bytes"));
        assert!(refused(&[("topics", &vec!["a"; 65].join(","))]).contains("at most 64"));
        assert!(refused(&[("after", "1"), ("after", "2")]).contains("more than once"));
        assert!(refused(&[("page", "1")]).contains("unknown parameter"));
    }
}
