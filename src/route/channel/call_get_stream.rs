//! The GET stream of a session mcplex opened for one call (a 2026-07-28 client's call to a session-era
//! target), where the target sends the requests it ties to no call. When the target closes it mid-call, it
//! is reopened as every upstream stream is ([`Reopen`]), a bounded number of times.

use crate::upstream::reopen::Reopen;
use crate::upstream::{LegacySession, MessageStream, Received, UpstreamError};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Reopenings of one call's GET stream at most; after that, requests tied to no call are lost to that call.
const MAX_REOPENS: u32 = 16;

type Reopening = Pin<Box<dyn Future<Output = Result<Option<MessageStream>, UpstreamError>> + Send>>;

/// One call's GET stream, reopened when its target closes it.
pub struct CallGetStream {
    session: Arc<LegacySession>,
    stream: Option<MessageStream>,
    /// Under way while the stream is closed: the wait, then the GET.
    reopening: Option<Reopening>,
    reopen: Reopen,
}

impl CallGetStream {
    /// The GET stream `stream` of the call's own `session`.
    pub fn new(session: Arc<LegacySession>, stream: MessageStream) -> Self {
        let mut reopen = Reopen::at_most(MAX_REOPENS);
        reopen.opened();
        Self {
            session,
            stream: Some(stream),
            reopening: None,
            reopen,
        }
    }

    /// The next message; never resolves once the stream is gone for good (the target refused a GET, or
    /// closed it [`MAX_REOPENS`] times). Cancel-safe: a reopening under way is kept, not restarted.
    pub async fn next(&mut self) -> Received {
        loop {
            if let Some(reopening) = self.reopening.as_mut() {
                let opened = reopening.as_mut().await;
                self.reopening = None;
                match opened {
                    Ok(Some(stream)) => {
                        self.reopen.opened();
                        self.stream = Some(stream);
                    }
                    // No GET stream any more (405): nothing more will come this way.
                    Ok(None) => return std::future::pending().await,
                    Err(error) => {
                        // The target may have dropped the events it was asked to replay: try afresh.
                        tracing::debug!(%error, "reopening a call's GET stream failed");
                        self.reopen.start_afresh();
                        self.schedule_reopen();
                        continue;
                    }
                }
            }
            let Some(stream) = self.stream.as_mut() else {
                return std::future::pending().await;
            };
            match stream.next().await {
                Some(Ok(received)) => return received,
                Some(Err(_)) | None => {
                    self.reopen.ended(stream.last_event_id(), stream.retry());
                    self.stream = None;
                    self.schedule_reopen();
                }
            }
        }
    }

    /// Starts the wait and the GET that reopen the stream, unless it was reopened too often already.
    fn schedule_reopen(&mut self) {
        let Some(wait) = self.reopen.next_wait() else { return };
        let session = self.session.clone();
        let resume_from = self.reopen.resume_from().map(str::to_owned);
        self.reopening = Some(Box::pin(async move {
            tokio::time::sleep(wait).await;
            session.open_stream(resume_from.as_deref()).await
        }));
    }
}
