//! Plain HTTP requests for the tests of the notification log server and
//! the event browser: the status, the headers and the body, whatever the
//! status, redirects not followed.

use std::collections::BTreeMap;

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The headers, by lowercase name.
    pub headers: BTreeMap<String, String>,
    /// The body, as text.
    pub body: String,
}

impl Reply {
    /// The value of the header `name` (lowercase), if any.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The body as JSON.
    ///
    /// # Panics
    ///
    /// When the body is not JSON (a test helper).
    #[must_use]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// `GET url` with these headers, redirects not followed.
///
/// # Panics
///
/// When the server does not answer (a test helper).
#[must_use]
pub fn get_with(url: &str, headers: &[(&str, &str)]) -> Reply {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut request = agent.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request.call().expect("the server answers");
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    Reply {
        status: response.status().as_u16(),
        headers,
        body: response.body_mut().read_to_string().expect("body"),
    }
}
