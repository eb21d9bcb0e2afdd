//! The HTTP+SSE transport of MCP 2024-11-05 ("legacy SSE"), which rmcp's
//! client does not have: `GET` the SSE URL; the server's first event,
//! `endpoint`, says where to `POST`; every JSON-RPC message we send is one
//! `POST` there, and everything the server sends arrives on the stream as
//! `message` events.
//!
//! The endpoint is resolved against the SSE URL and must keep its origin:
//! otherwise a server could make MCPO send the registrant's headers (often
//! credentials) to another host.
//!
//! **Reconnecting.** The protocol ties a session to its stream: servers (the
//! TypeScript and Python SDKs, for instance) forget the session when the
//! `GET` ends, and a new `GET` starts a new session with a new endpoint.
//! When the stream drops we reconnect, at most [`RECONNECT_ATTEMPTS`] times
//! with doubling delays, and then:
//!
//! * the server names the same endpoint: it kept the session (a server with
//!   one fixed endpoint), so the transport goes on. Requests in flight when
//!   the stream dropped fail, since their answers may have gone into the
//!   dead stream;
//! * it names another endpoint, or cannot be reached: the session is gone.
//!   The transport ends, every pending request fails as "connection closed"
//!   (rmcp drops their responders), and the session's owner opens a new one:
//!   the executor discards closed sessions and reconnects on the next call.
//!
//! A `POST` answered 404 or 410 means the server forgot the session too,
//! and ends the transport the same way.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use reqwest::StatusCode;
use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, ErrorCode as JsonRpcCode, ErrorData, JsonRpcError,
    JsonRpcMessage, RequestId, ServerJsonRpcMessage,
};
use rmcp::transport::Transport;
use rmcp::RoleClient;
use sse_stream::{Sse, SseStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use url::Url;

use super::McpError;
use crate::egress::EgressPolicy;

/// Largest event we buffer: the parser keeps a whole event in memory, and a
/// server must not be able to make that unbounded.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;
/// Reconnections tried after the stream drops, before giving the session up.
const RECONNECT_ATTEMPTS: u32 = 3;
/// Delay before the first reconnection; each next one waits twice as long.
const RECONNECT_FIRST_DELAY: Duration = Duration::from_millis(250);
/// Server messages waiting for rmcp.
const INCOMING_CAPACITY: usize = 64;

type Events = Pin<Box<dyn Stream<Item = Result<Sse, sse_stream::Error>> + Send>>;

/// Why a message could not be posted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SseError {
    #[error("cannot post to the MCP server: {0}")]
    Post(String),
    #[error("the MCP server refused a posted message with HTTP {0}")]
    Rejected(StatusCode),
    #[error("cannot encode a message: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Everything needed to open (and reopen) the stream.
struct Source {
    http: reqwest::Client,
    url: Url,
    headers: HeaderMap,
    egress: EgressPolicy,
    /// Bounds reaching the server and its `endpoint` event, and each `POST`.
    timeout: Duration,
    label: Arc<str>,
}

/// An open legacy SSE session, as an rmcp client transport.
pub(crate) struct SseTransport {
    incoming: mpsc::Receiver<ServerJsonRpcMessage>,
    poster: Poster,
    reader: AbortHandle,
}

impl SseTransport {
    /// Opens the stream and waits for the `endpoint` event, until `deadline`.
    /// `timeout` bounds later reconnections and each `POST`.
    pub(crate) async fn connect(
        http: reqwest::Client,
        url: &str,
        headers: HeaderMap,
        egress: &EgressPolicy,
        timeout: Duration,
        deadline: Instant,
        label: &str,
    ) -> Result<SseTransport, McpError> {
        let url = Url::parse(url).map_err(|e| McpError::Connect(e.to_string()))?;
        let source = Source {
            http,
            url,
            headers,
            egress: egress.clone(),
            timeout,
            label: Arc::from(label),
        };
        let (events, endpoint) = open(&source, deadline).await?;
        let (sender, incoming) = mpsc::channel(INCOMING_CAPACITY);
        let pending = Pending::default();
        let poster = Poster {
            http: source.http.clone(),
            endpoint: Arc::new(endpoint.clone()),
            headers: Arc::new(source.headers.clone()),
            timeout,
            pending: pending.clone(),
            reader: Arc::default(),
        };
        let reader = tokio::spawn(read(source, events, endpoint, sender, pending)).abort_handle();
        let _ = poster.reader.set(reader.clone());
        Ok(SseTransport {
            incoming,
            poster,
            reader,
        })
    }
}

impl Transport<RoleClient> for SseTransport {
    type Error = SseError;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl std::future::Future<Output = Result<(), SseError>> + Send + 'static {
        self.poster.clone().post(item)
    }

    fn receive(
        &mut self,
    ) -> impl std::future::Future<Output = Option<ServerJsonRpcMessage>> + Send {
        self.incoming.recv()
    }

    async fn close(&mut self) -> Result<(), SseError> {
        // Ending the `GET` is how a legacy SSE client says goodbye.
        self.reader.abort();
        self.incoming.close();
        Ok(())
    }
}

impl Drop for SseTransport {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Ids of our requests not answered yet, to fail them if their answers may
/// have been lost with the stream.
#[derive(Clone, Default)]
struct Pending(Arc<Mutex<HashSet<RequestId>>>);

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<RequestId>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Posts our messages; cheap to clone, since every send is its own task.
#[derive(Clone)]
struct Poster {
    http: reqwest::Client,
    endpoint: Arc<Url>,
    headers: Arc<HeaderMap>,
    timeout: Duration,
    pending: Pending,
    /// The reader, ended when the server says it forgot the session.
    reader: Arc<std::sync::OnceLock<AbortHandle>>,
}

impl Poster {
    async fn post(self, message: ClientJsonRpcMessage) -> Result<(), SseError> {
        let body = serde_json::to_vec(&message)?;
        let request_id = match &message {
            JsonRpcMessage::Request(request) => Some(request.id.clone()),
            JsonRpcMessage::Notification(notification) => {
                if let ClientNotification::CancelledNotification(cancelled) =
                    &notification.notification
                {
                    if let Some(id) = &cancelled.params.request_id {
                        self.pending.lock().remove(id);
                    }
                }
                None
            }
            _ => None,
        };
        if let Some(id) = &request_id {
            self.pending.lock().insert(id.clone());
        }
        let posted = self.send(body).await;
        if let (Err(_), Some(id)) = (&posted, &request_id) {
            self.pending.lock().remove(id);
        }
        posted
    }

    async fn send(&self, body: Vec<u8>) -> Result<(), SseError> {
        let mut headers = (*self.headers).clone();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let response = self
            .http
            .post((*self.endpoint).clone())
            .headers(headers)
            .body(body)
            // The answer comes on the stream; the POST only has to be taken.
            .timeout(self.timeout)
            .send()
            .await
            // The endpoint's query holds the session id: keep it out of errors.
            .map_err(|e| SseError::Post(describe(&e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if matches!(status, StatusCode::NOT_FOUND | StatusCode::GONE) {
            if let Some(reader) = self.reader.get() {
                reader.abort();
            }
        }
        Err(SseError::Rejected(status))
    }
}

/// The URL as errors and logs may show it: a query string may carry a token.
fn shown(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// reqwest's own message is terse ("error sending request"); the causes
/// below it say what a person needs ("Connection refused").
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `GET`s the stream and reads up to the `endpoint` event, until `deadline`.
async fn open(source: &Source, deadline: Instant) -> Result<(Events, Url), McpError> {
    let url = shown(&source.url);
    let mut headers = source.headers.clone();
    headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    let request = source.http.get(source.url.clone()).headers(headers).send();
    let response = tokio::time::timeout_at(deadline, request)
        .await
        .map_err(|_| McpError::Timeout(source.timeout))?
        .map_err(|e| {
            McpError::Connect(format!(
                "cannot reach {url}: {}",
                describe(&e.without_url())
            ))
        })?;
    let status = response.status();
    if !status.is_success() {
        return Err(McpError::Protocol(format!(
            "{url} answered the SSE request (GET) with HTTP {status}, so it is not a legacy SSE \
             MCP endpoint; check the URL (such endpoints often end in /sse), or use type \
             streamable_http if the server speaks streamable HTTP"
        )));
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_owned();
    if !content_type
        .to_ascii_lowercase()
        .trim_start()
        .starts_with("text/event-stream")
    {
        return Err(McpError::Protocol(format!(
            "{url} did not answer with an SSE stream (content-type {content_type}); is this a \
             streamable HTTP server? use type streamable_http"
        )));
    }
    let mut events: Events = Box::pin(SseStream::from_bytes_stream(bounded(
        response.bytes_stream(),
    )));
    let waiting = async {
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| {
                McpError::Protocol(format!("{url} sent a broken SSE stream: {}", describe(&e)))
            })?;
            // Anything before the endpoint has no session to belong to.
            if event.event.as_deref() == Some("endpoint") {
                return resolve_endpoint(&source.url, event.data.as_deref().unwrap_or_default());
            }
        }
        Err(McpError::Protocol(format!(
            "{url} ended the SSE stream without sending the `endpoint` event; is this a legacy \
             SSE MCP endpoint?"
        )))
    };
    let endpoint = tokio::time::timeout_at(deadline, waiting)
        .await
        .map_err(|_| {
            McpError::Protocol(format!(
                "{url} opened an SSE stream but sent no `endpoint` event within {:?}; is this a \
                 legacy SSE MCP endpoint?",
                source.timeout
            ))
        })??;
    // Same origin as the SSE URL, which passed the policy; an IP literal is
    // not seen by the client's resolver, so it is checked here as well.
    source
        .egress
        .check_url(&endpoint)
        .map_err(McpError::Forbidden)?;
    Ok((events, endpoint))
}

/// Where the server wants our messages: `data` of its `endpoint` event,
/// resolved against the SSE URL, refused on another origin.
pub(crate) fn resolve_endpoint(sse_url: &Url, data: &str) -> Result<Url, McpError> {
    let data = data.trim();
    if data.is_empty() {
        return Err(McpError::Protocol(
            "the server sent an empty `endpoint` event".into(),
        ));
    }
    let mut endpoint = sse_url.join(data).map_err(|e| {
        McpError::Protocol(format!(
            "the server's `endpoint` event is not a URL MCPO can read: {e}"
        ))
    })?;
    endpoint.set_fragment(None);
    if endpoint.origin() != sse_url.origin() {
        return Err(McpError::Protocol(format!(
            "the server asked MCPO to post its messages to {}, another origin than the SSE \
             URL's ({}); MCPO only posts to the SSE URL's origin",
            endpoint.origin().ascii_serialization(),
            sse_url.origin().ascii_serialization(),
        )));
    }
    Ok(endpoint)
}

/// Reads the stream into `incoming` until it ends for good; returning drops
/// the sender, which tells rmcp the transport closed.
async fn read(
    source: Source,
    mut events: Events,
    endpoint: Url,
    incoming: mpsc::Sender<ServerJsonRpcMessage>,
    pending: Pending,
) {
    let label = source.label.clone();
    loop {
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    tracing::info!(service = %label, error = %describe(&e), "SSE stream broke");
                    break;
                }
            };
            match event.event.as_deref() {
                None | Some("message") => {
                    for message in parse_messages(event.data.as_deref().unwrap_or_default(), &label)
                    {
                        match &message {
                            JsonRpcMessage::Response(response) => {
                                pending.lock().remove(&response.id);
                            }
                            JsonRpcMessage::Error(JsonRpcError { id: Some(id), .. }) => {
                                pending.lock().remove(id);
                            }
                            _ => {}
                        }
                        if incoming.send(message).await.is_err() {
                            return;
                        }
                    }
                }
                Some("endpoint") => {
                    let moved = resolve_endpoint(&source.url, event.data.as_deref().unwrap_or(""))
                        .map_or(true, |fresh| fresh != endpoint);
                    if moved {
                        tracing::info!(service = %label, "the MCP server moved the session's endpoint: the session is over");
                        return;
                    }
                }
                Some(_) => {}
            }
        }
        tracing::info!(service = %label, "SSE stream ended; reconnecting");
        match reconnect(&source, &endpoint).await {
            Some(fresh) => {
                events = fresh;
                let lost: Vec<RequestId> = pending.lock().drain().collect();
                for id in lost {
                    let error = ErrorData::new(
                        JsonRpcCode::INTERNAL_ERROR,
                        "the SSE stream from the MCP server dropped before its answer arrived; \
                         the request may or may not have run",
                        None,
                    );
                    if incoming
                        .send(ServerJsonRpcMessage::error(error, Some(id)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            None => return,
        }
    }
}

/// Opens the stream again. `Some` only if the server kept our session.
async fn reconnect(source: &Source, endpoint: &Url) -> Option<Events> {
    let mut delay = RECONNECT_FIRST_DELAY;
    for attempt in 1..=RECONNECT_ATTEMPTS {
        tokio::time::sleep(delay).await;
        delay *= 2;
        match open(source, Instant::now() + source.timeout).await {
            Ok((events, fresh)) if fresh == *endpoint => {
                tracing::info!(service = %source.label, attempt, "SSE stream reconnected to the same session");
                return Some(events);
            }
            Ok(_) => {
                tracing::info!(service = %source.label, "the MCP server started a new session: the old one is over");
                return None;
            }
            Err(e) => {
                tracing::info!(service = %source.label, attempt, error = %e, "reconnecting the SSE stream failed");
            }
        }
    }
    None
}

/// One `message` event's JSON-RPC message, or batch (2024-11-05 allowed
/// them). What does not parse is logged and skipped: the request it
/// answers, if any, ends at its caller's timeout.
fn parse_messages(data: &str, label: &str) -> Vec<ServerJsonRpcMessage> {
    if data.trim_start().starts_with('[') {
        if let Ok(batch) = serde_json::from_str::<Vec<ServerJsonRpcMessage>>(data) {
            return batch;
        }
    }
    match serde_json::from_str::<ServerJsonRpcMessage>(data) {
        Ok(message) => vec![message],
        Err(e) => {
            tracing::warn!(service = %label, error = %e, "skipping an SSE message that is not JSON-RPC");
            Vec::new()
        }
    }
}

/// Why the byte stream stopped.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("{0}")]
    Http(String),
    #[error("an SSE event is larger than {MAX_EVENT_BYTES} bytes")]
    TooLarge,
}

/// The body, cut off with an error once one event exceeds [`MAX_EVENT_BYTES`].
fn bounded<B: AsRef<[u8]>>(
    body: impl Stream<Item = Result<B, reqwest::Error>> + Send,
) -> impl Stream<Item = Result<B, BodyError>> + Send {
    let mut size = EventSize::default();
    body.map(move |chunk| {
        let chunk = chunk.map_err(|e| BodyError::Http(describe(&e.without_url())))?;
        size.observe(chunk.as_ref())?;
        Ok(chunk)
    })
}

/// Bytes of the current event, which ends at an empty line.
#[derive(Default)]
struct EventSize {
    event: usize,
    line: usize,
    after_cr: bool,
}

impl EventSize {
    fn observe(&mut self, chunk: &[u8]) -> Result<(), BodyError> {
        for &byte in chunk {
            let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
            match byte {
                // The second half of a CRLF.
                b'\n' if after_cr => {}
                b'\r' | b'\n' => {
                    if self.line == 0 {
                        self.event = 0;
                    }
                    self.line = 0;
                }
                _ => {
                    self.line += 1;
                    self.event += 1;
                    if self.event > MAX_EVENT_BYTES {
                        return Err(BodyError::TooLarge);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(sse: &str, data: &str) -> Result<String, String> {
        resolve_endpoint(&Url::parse(sse).unwrap(), data)
            .map(|u| u.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn endpoints_resolve_against_the_sse_url() {
        assert_eq!(
            resolve("http://h:3001/sse", "/message?sessionId=abc").unwrap(),
            "http://h:3001/message?sessionId=abc"
        );
        assert_eq!(
            resolve("https://h/mcp/sse", "messages/?session_id=1").unwrap(),
            "https://h/mcp/messages/?session_id=1"
        );
        assert_eq!(
            resolve("https://h/a/sse?token=t", " ../post#frag \n").unwrap(),
            "https://h/post"
        );
        // Absolute, on the same origin (the default port spelled out).
        assert_eq!(
            resolve("http://h/sse", "http://h:80/message").unwrap(),
            "http://h/message"
        );
    }

    #[test]
    fn endpoints_on_another_origin_are_refused() {
        for data in [
            "http://evil.example/message",
            "https://h/message",
            "http://h:8080/message",
            "//other/message",
            "http://169.254.169.254/latest",
        ] {
            let error = resolve("http://h/sse", data).unwrap_err();
            assert!(error.contains("another origin"), "{data}: {error}");
        }
        assert!(resolve("http://h/sse", "  ").unwrap_err().contains("empty"));
        assert!(resolve("http://h/sse", "http://[::1").is_err());
    }

    #[test]
    fn event_size_is_bounded_per_event() {
        let mut size = EventSize::default();
        let line = vec![b'a'; 1024 * 1024];
        // Many large events, each under the limit, pass.
        for _ in 0..40 {
            size.observe(b"data: ").unwrap();
            size.observe(&line).unwrap();
            size.observe(b"\r\n\r\n").unwrap();
        }
        // One event over the limit, in lines and across chunks, does not.
        let mut size = EventSize::default();
        let result = (0..=16).try_for_each(|_| {
            size.observe(&line)?;
            size.observe(b"\n")
        });
        assert!(matches!(result, Err(BodyError::TooLarge)));
        // A lone CR ends a line as well: CR CR is an empty line.
        let mut size = EventSize::default();
        for _ in 0..20 {
            size.observe(&line).unwrap();
            size.observe(b"\r\r").unwrap();
        }
    }

    #[test]
    fn batches_and_junk() {
        let one = r#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
        assert_eq!(parse_messages(one, "t").len(), 1);
        let batch =
            format!(r#"[{one},{{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}}]"#);
        assert_eq!(parse_messages(&batch, "t").len(), 2);
        assert!(parse_messages("not json", "t").is_empty());
    }
}
