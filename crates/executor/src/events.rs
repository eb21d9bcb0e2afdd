//! A call answered as server-sent events: `progress` events as the server
//! reports progress, then one `result` event (the answer as JSON) or one
//! `error` event (the error body with its `status`). The call runs while the
//! stream is read; a client that goes away drops the stream, which cancels
//! the call upstream.

use std::sync::Arc;

use actix_web::HttpResponse;
use futures::StreamExt;
use mcpo_core::mcp::Progress;
use mcpo_core::ApiError;
use serde_json::json;
use tokio::sync::mpsc;

use crate::calls::CallRequest;
use crate::calls::Executor;
use crate::results::Answer;

enum Event {
    Progress(Progress),
    Done(String),
}

/// Aborts the call when the stream is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub fn stream(
    executor: Arc<Executor>,
    service: String,
    tool: String,
    body: actix_web::web::Bytes,
    request: CallRequest,
) -> HttpResponse {
    let (events, received) = mpsc::unbounded_channel::<Event>();
    let (progress, mut reported) = mpsc::unbounded_channel::<Progress>();
    let relay = events.clone();
    let forward = actix_web::rt::spawn(async move {
        while let Some(p) = reported.recv().await {
            if relay.send(Event::Progress(p)).is_err() {
                break;
            }
        }
    });
    let call = actix_web::rt::spawn(async move {
        // Bytes are for a client that asked for them, not for an event stream.
        let request = CallRequest {
            accept: None,
            ..request
        };
        let answer = executor
            .call(&service, &tool, &body, &request, Some(progress))
            .await;
        // Progress sent before the answer goes out first.
        let _ = forward.await;
        let done = match answer {
            Ok(Answer::Json(value)) => sse("result", &value),
            // Not asked for (no `Accept` is passed on), but complete anyway.
            Ok(Answer::Bytes { mime, bytes }) => {
                use base64::Engine;
                let data = base64::engine::general_purpose::STANDARD.encode(bytes);
                sse("result", &json!({ "mimeType": mime, "data": data }))
            }
            Err(e) => {
                let error = ApiError::from(e);
                let mut body = serde_json::to_value(error.body()).unwrap_or_default();
                body["status"] = json!(error.code.status().as_u16());
                sse("error", &body)
            }
        };
        let _ = events.send(Event::Done(done));
    });
    let guard = AbortOnDrop(call);
    let frames = tokio_stream_of(received).map(move |event| {
        let _keep_the_call_alive = &guard;
        Ok::<_, actix_web::Error>(actix_web::web::Bytes::from(match event {
            Event::Progress(p) => sse("progress", &p),
            Event::Done(frame) => frame,
        }))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .streaming(frames)
}

fn sse(name: &str, data: &impl serde::Serialize) -> String {
    format!(
        "event: {name}\ndata: {}\n\n",
        serde_json::to_string(data).unwrap_or_else(|_| "null".into())
    )
}

fn tokio_stream_of<T>(mut receiver: mpsc::UnboundedReceiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}
