//! Logging for every process: JSON lines by default, each line carrying the
//! fields of its spans (so every line of a request has its request id).

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG` overrides the default `info`.
/// A second call (tests start many apps in one process) is a no-op.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(true)
                    .with_writer(|| Scrubbed(std::io::stdout())),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_writer(|| Scrubbed(std::io::stderr())))
            .try_init(),
    };
}

/// Writes log output with the query string of every http(s) URL replaced:
/// libraries (rmcp's transport worker, reqwest's errors) log full URLs, and
/// a query string may carry a token.
struct Scrubbed<W>(W);

impl<W: std::io::Write> std::io::Write for Scrubbed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) if text.contains("://") => {
                self.0.write_all(scrub_url_queries(text).as_bytes())?;
                Ok(buf.len())
            }
            _ => self.0.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

pub fn scrub_url_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = ["http://", "https://"]
        .iter()
        .filter_map(|scheme| rest.find(scheme))
        .min()
    {
        let end = rest[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | '>' | '\\'))
            .map_or(rest.len(), |i| start + i);
        let url = &rest[start..end];
        out.push_str(&rest[..start]);
        match url.find('?') {
            Some(q) => {
                out.push_str(&url[..q]);
                out.push_str("?[redacted]");
            }
            None => out.push_str(url),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::scrub_url_queries;

    #[test]
    fn query_strings_of_urls_are_redacted() {
        assert_eq!(
            scrub_url_queries(
                r#"{"message":"error sending request for url (https://h/mcp?token=abc&x=1)"}"#
            ),
            r#"{"message":"error sending request for url (https://h/mcp?[redacted])"}"#
        );
        assert_eq!(scrub_url_queries("no urls ?here"), "no urls ?here");
        assert_eq!(
            scrub_url_queries("a http://x/y b https://z/?k=v"),
            "a http://x/y b https://z/?[redacted]"
        );
    }
}
