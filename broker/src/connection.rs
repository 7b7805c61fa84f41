//! One client connection: size-prefixed frames (read by `request_reader`, within the
//! broker's queued-request budget), responses written back in request order and coalesced.
//!
//! On TLS listeners the connection starts with a TLS handshake, on SASL ones with the SASL
//! exchange (`authenticator`); what they prove is the principal of every request's scope.
//!
//! Requests are handled one after another, as Kafka does, with one exception that keeps
//! their order: a produce lets the next request start once its append is queued, so a
//! client's pipelined produces (up to `max.in.flight.requests.per.connection`) share group
//! commits and wait for fsync and replication together instead of one by one.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::FuturesOrdered;
use futures::StreamExt;
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::authenticator::{authenticate, Authenticated, SaslTransport, Socket};
use crate::context::Ctx;
use crate::dispatch::{dispatch, peek_header};
use crate::frame::Frame;
use crate::metrics;
use crate::read_ahead::ReadAhead;
use crate::request_reader::{read_frames, Incoming};
use crate::request_scope::{Listener, RequestScope, Session};
use crate::security::oauth::OAuthValidator;
use crate::security::tls::TlsListener;
use crate::security::{Principal, SecurityProtocol};

/// A listener connections are accepted on.
pub struct BoundListener {
    /// Its name, as `listeners` gives it.
    pub name: String,
    /// The Kafka listener or the controller's.
    pub kind: Listener,
    /// Its security protocol.
    pub protocol: SecurityProtocol,
    /// Its TLS settings, on SSL and SASL_SSL listeners.
    pub tls: Option<TlsListener>,
    /// Its OAUTHBEARER validator, on SASL listeners that enable the mechanism.
    pub oauth: Option<OAuthValidator>,
}

/// How long a client has for its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Resolves once the newest request lets the next one start (or finishes).
async fn next_request_allowed(gate: &mut Option<oneshot::Receiver<()>>) {
    match gate {
        Some(rx) => {
            let _ = rx.await;
        }
        None => std::future::pending().await,
    }
}

/// Runs a SASL exchange (the first, or a re-authentication of `previous`) on `io`, bounded
/// by `connections.max.idle.ms` and shutdown: the session, or why the connection closes.
async fn exchange(
    ctx: &Ctx,
    io: &mut impl SaslTransport,
    listener: &BoundListener,
    peer: Option<std::net::SocketAddr>,
    previous: Option<&Authenticated>,
    shutdown: &CancellationToken,
) -> Result<Authenticated, String> {
    let exchange = authenticate(
        ctx,
        io,
        &listener.name,
        listener.oauth.as_ref(),
        peer,
        previous,
    );
    tokio::select! {
        _ = shutdown.cancelled() => Err("shutting down".into()),
        outcome = tokio::time::timeout(ctx.config.connections_max_idle(), exchange) => {
            outcome.unwrap_or_else(|_| Err("the SASL exchange took too long".into()))
        }
    }
}

/// Whether `frame` is a SaslHandshake: on an authenticated SASL connection, the start of a
/// re-authentication.
fn starts_reauthentication(frame: &Bytes) -> bool {
    matches!(peek_header(frame), Ok((key, _, _)) if key == ApiKey::SaslHandshake as i16)
}

/// A re-authentication's frames: those the connection's reader task reads next (the first
/// one already read), answers through its writer task.
struct Queued<'a> {
    first: Option<Bytes>,
    frames: &'a mut mpsc::Receiver<Incoming>,
    out: &'a mpsc::Sender<Frame>,
}

impl SaslTransport for Queued<'_> {
    async fn read(&mut self) -> Result<Bytes, String> {
        if let Some(first) = self.first.take() {
            return Ok(first);
        }
        match self.frames.recv().await {
            // Re-authentication frames are small; they leave the request budget at once.
            Some(Ok((frame, _held))) => Ok(frame),
            Some(Err(e)) => Err(e),
            None => Err("closed during re-authentication".into()),
        }
    }
    async fn write(&mut self, frame: Frame) -> Result<(), String> {
        self.out
            .send(frame)
            .await
            .map_err(|_| "connection closed".to_string())
    }
}

/// Resolves at `until` (never when unset or past the clock's range).
async fn sleep_until(until: Option<Instant>) {
    match until {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Responses queued for writing before the reader pauses.
const WRITE_QUEUE: usize = 64;

/// Requests of one connection handled at once (clients pipeline up to 5 produces).
const MAX_IN_FLIGHT: usize = 8;

/// Serves one connection that came in on `listener` until the client closes it, sends
/// garbage, fails to authenticate, or shutdown.
pub async fn serve(
    ctx: Ctx,
    stream: TcpStream,
    listener: Arc<BoundListener>,
    shutdown: CancellationToken,
) {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let Some(tls) = &listener.tls else {
        let (reader, writer) = stream.into_split();
        let principal = Principal::anonymous();
        return serve_stream(ctx, reader, writer, peer, &listener, principal, shutdown).await;
    };
    let accepted = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream)).await;
    let stream = match accepted {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(?peer, error = %e, "closing connection: TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(?peer, "closing connection: no TLS handshake in time");
            return;
        }
    };
    let principal = tls.principal(stream.get_ref().1.peer_certificates());
    let (reader, writer) = tokio::io::split(stream);
    serve_stream(ctx, reader, writer, peer, &listener, principal, shutdown).await
}

/// Serves a connection once its transport is set up: the SASL exchange first on a SASL
/// listener, then requests.
async fn serve_stream<R, W>(
    ctx: Ctx,
    mut reader: R,
    mut writer: W,
    peer: Option<std::net::SocketAddr>,
    listener: &BoundListener,
    principal: Principal,
    shutdown: CancellationToken,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let sasl = if listener.protocol.uses_sasl() {
        let mut socket = Socket {
            reader: &mut reader,
            writer: &mut writer,
            max_frame: ctx.config.sasl_max_receive_size(),
        };
        match exchange(&ctx, &mut socket, listener, peer, None, &shutdown).await {
            Ok(session) => Some(session),
            Err(why) => {
                tracing::debug!(?peer, listener = %listener.name, %why, "closing connection: not authenticated");
                let _ = writer.shutdown().await;
                return;
            }
        }
    } else {
        None
    };
    let session = Arc::new(Session {
        listener_name: listener.name.clone(),
        principal: sasl.as_ref().map_or(principal, |s| s.principal.clone()),
    });
    let bound = listener;
    let listener = listener.kind;
    // One frame read ahead at most: the rest wait in the socket.
    let (frames_tx, mut frames) = mpsc::channel(1);
    let read_task = tokio::spawn(read_frames(
        reader,
        ctx.config.max_request_bytes(),
        Arc::clone(&ctx.request_budget),
        frames_tx,
    ));
    let (tx, mut rx) = mpsc::channel::<Frame>(WRITE_QUEUE);

    let write_task = tokio::spawn(async move {
        let mut out = tokio::io::BufWriter::with_capacity(64 << 10, &mut writer);
        while let Some(frame) = rx.recv().await {
            for part in frame.parts() {
                // Parts past the buffer's capacity go to the socket directly.
                if out.write_all(part).await.is_err() {
                    return;
                }
            }
            // Coalesce: flush only when nothing else is ready to go.
            if rx.is_empty() && out.flush().await.is_err() {
                return;
            }
        }
        let _ = out.flush().await;
        let _ = writer.shutdown().await;
    });

    let _active = metrics::ConnectionGauge::open();
    let read_ahead = Arc::new(ReadAhead::default());
    let mut in_flight = FuturesOrdered::new();
    // Set while the newest request has not yet let the next one start.
    let mut gate: Option<oneshot::Receiver<()>> = None;
    let mut reading = true;
    let mut most_in_flight = 0;
    // Set while the client is throttled for passing a quota.
    let mut muted_until: Option<Instant> = None;
    // connections.max.idle.ms: a connection with nothing in flight and no request for
    // this long is closed.
    let max_idle = ctx.config.connections_max_idle();
    let mut idle_since = Instant::now();
    // A SaslHandshake that starts a re-authentication, run once earlier requests are answered.
    let mut reauth: Option<Bytes> = None;
    let mut sasl = sasl;
    while reading || !in_flight.is_empty() {
        let reauth_now = if in_flight.is_empty() {
            reauth.take()
        } else {
            None
        };
        if let (Some(first), Some(previous)) = (reauth_now, &sasl) {
            let mut queued = Queued {
                first: Some(first),
                frames: &mut frames,
                out: &tx,
            };
            let outcome = exchange(&ctx, &mut queued, bound, peer, Some(previous), &shutdown).await;
            metrics::record_reauthentication(&bound.name, outcome.is_ok());
            match outcome {
                Ok(renewed) => sasl = Some(renewed),
                Err(why) => {
                    tracing::debug!(?peer, %why, "closing connection: re-authentication failed");
                    break;
                }
            }
            idle_since = Instant::now();
            continue;
        }
        let may_read = reading
            && reauth.is_none()
            && gate.is_none()
            && muted_until.is_none()
            && in_flight.len() < MAX_IN_FLIGHT;
        let idle = reading && in_flight.is_empty() && muted_until.is_none();
        tokio::select! {
            _ = shutdown.cancelled(), if reading => reading = false,
            _ = next_request_allowed(&mut gate), if gate.is_some() => gate = None,
            _ = sleep_until(muted_until), if muted_until.is_some() => muted_until = None,
            _ = sleep_until(idle_since.checked_add(max_idle)), if idle => {
                tracing::debug!(?peer, "closing connection: idle for connections.max.idle.ms");
                reading = false;
            }
            frame = frames.recv(), if may_read => match frame {
                Some(Ok((f, held))) => {
                    let expired = sasl.as_ref().and_then(|s| s.expires).is_some_and(|t| Instant::now() >= t);
                    if expired {
                        // KIP-368: a client that did not re-authenticate in time is cut off.
                        tracing::debug!(?peer, "closing connection: SASL session expired");
                        metrics::record_expired_session(&bound.name);
                        break;
                    }
                    if sasl.is_some() && starts_reauthentication(&f) {
                        reauth = Some(f);
                        continue;
                    }
                    let (allow, allowed) = oneshot::channel();
                    gate = Some(allowed);
                    let scope = RequestScope::new(
                        peer,
                        listener,
                        Arc::clone(&session),
                        Arc::clone(&read_ahead),
                        allow,
                    );
                    let ctx = &ctx;
                    in_flight.push_back(async move {
                        let answer = dispatch(ctx, scope, f).await;
                        // The request's bytes leave the broker's budget once answered.
                        drop(held);
                        answer
                    });
                    most_in_flight = most_in_flight.max(in_flight.len());
                }
                Some(Err(e)) => {
                    tracing::debug!(?peer, error = %e, "closing connection: bad frame");
                    reading = false;
                }
                None => reading = false,
            },
            Some(done) = in_flight.next() => match done {
                Ok(answer) => {
                    idle_since = Instant::now();
                    if let Some(response) = answer.response {
                        if tx.send(response).await.is_err() {
                            break;
                        }
                    }
                    if !answer.mute.is_zero() {
                        let until = Instant::now() + answer.mute;
                        muted_until = Some(muted_until.map_or(until, |m| m.max(until)));
                    }
                }
                Err(e) => {
                    // Answers to earlier requests are out; later ones are dropped.
                    tracing::debug!(?peer, error = %e, "closing connection");
                    break;
                }
            },
        }
    }
    read_task.abort();
    drop(tx);
    let _ = write_task.await;
    tracing::debug!(?peer, most_in_flight, "connection closed");
}
