//! The SASL exchange on a SASL_PLAINTEXT or SASL_SSL connection, before its first request
//! (Kafka's SaslServerAuthenticator): ApiVersions, then SaslHandshake naming a mechanism,
//! then SaslAuthenticate messages (after a v0 handshake: bare token frames) until the client
//! has proved who it is. Nothing else is
//! served meanwhile, frames are capped at `sasl.server.max.receive.size` and read without
//! trusting their length prefix, and a failed login is answered only after
//! `connection.failed.authentication.delay.ms`, then the connection closes.
//!
//! Re-authentication (KIP-368): with `connections.max.reauth.ms` set, a session lasts that
//! long (or until its OAUTHBEARER token expires, if sooner); the final SaslAuthenticate
//! answer says so, and the client runs the same exchange again on the open connection
//! before then, with the same mechanism and as the same principal. The connection feeds
//! that exchange from its reader and writer tasks (`SaslTransport`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::context::Ctx;
use crate::dispatch::{decode, dispatch, encode_response, peek_header, Decoded};
use crate::error::BrokerError;
use crate::frame::Frame;
use crate::handlers::{sasl_authenticate, sasl_handshake};
use crate::read_ahead::ReadAhead;
use crate::request_scope::{Listener, RequestScope, Session};
use crate::security::oauth::{bearer_token, OAuthValidator};
use crate::security::plain::PlainUsers;
use crate::security::scram::{ScramServer, ScramStep};
use crate::security::{Mechanism, Principal};

/// Where the exchange is.
enum Exchange {
    /// No mechanism chosen yet.
    Start,
    /// PLAIN: one message, the password.
    Plain,
    /// SCRAM: two messages.
    Scram(Mechanism, Box<ScramServer>),
    /// OAUTHBEARER: one message, the token.
    OAuth,
    /// OAUTHBEARER after a refused token: the client acknowledges the error (RFC 7628's
    /// `\x01`), then the exchange fails with why.
    OAuthRefused(String),
}

/// What a finished exchange proved.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Who the client is.
    pub principal: Principal,
    /// The mechanism it proved it with (a re-authentication must use the same).
    pub mechanism: Mechanism,
    /// When the session ends and the client must have re-authenticated; never if unset.
    pub expires: Option<Instant>,
}

/// Where an exchange's frames come from and go to: the socket itself before the first
/// request, the connection's reader and writer tasks for a re-authentication.
pub(crate) trait SaslTransport {
    /// The next frame from the client.
    async fn read(&mut self) -> Result<Bytes, String>;
    /// Sends one frame to the client.
    async fn write(&mut self, frame: Frame) -> Result<(), String>;
}

/// A connection's socket before its first request: frames capped at
/// `sasl.server.max.receive.size`.
pub(crate) struct Socket<'a, R, W> {
    pub reader: &'a mut R,
    pub writer: &'a mut W,
    pub max_frame: usize,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> SaslTransport for Socket<'_, R, W> {
    async fn read(&mut self) -> Result<Bytes, String> {
        read_small_frame(self.reader, self.max_frame).await
    }
    async fn write(&mut self, frame: Frame) -> Result<(), String> {
        write_frame(self.writer, frame).await
    }
}

/// Runs the exchange on a connection of `listener_name`: the first one, or a
/// re-authentication of the session `previous`. What it proved, or why the connection must
/// close.
pub(crate) async fn authenticate(
    ctx: &Ctx,
    io: &mut impl SaslTransport,
    listener_name: &str,
    oauth: Option<&OAuthValidator>,
    peer: Option<SocketAddr>,
    previous: Option<&Authenticated>,
) -> Result<Authenticated, String> {
    let enabled: Vec<Mechanism> = match previous {
        // A re-authentication keeps the mechanism: a handshake naming another is refused.
        Some(p) => vec![p.mechanism],
        None => ctx
            .config
            .sasl_enabled_mechanisms()
            .iter()
            .filter_map(|m| Mechanism::from_name(m))
            .collect(),
    };
    let mut exchange = Exchange::Start;
    // Set by a v0 handshake: tokens come and go as bare frames, not Kafka requests.
    let mut bare_tokens = false;
    loop {
        let frame = io.read().await?;
        if bare_tokens {
            let token = SaslAuthenticateRequest::default().with_auth_bytes(frame);
            let (response, done) = sasl_step(ctx, listener_name, oauth, &mut exchange, token).await;
            // A failure has no bare form: the connection just closes.
            let proved = done?
                .map(|p| p.session(ctx, listener_name, previous))
                .transpose()?;
            let mut reply = (response.auth_bytes.len() as u32).to_be_bytes().to_vec();
            reply.extend_from_slice(&response.auth_bytes);
            io.write(Frame::from(bytes::BytesMut::from(&reply[..])))
                .await?;
            match proved {
                Some(session) => return Ok(session),
                None => continue,
            }
        }
        let (raw_key, _, correlation_id) = peek_header(&frame).map_err(|e| e.to_string())?;
        if raw_key == ApiKey::ApiVersions as i16 {
            let answer = api_versions(ctx, peer, listener_name, frame).await?;
            io.write(answer).await?;
            continue;
        }
        let Decoded {
            key,
            version,
            request,
            ..
        } = decode(Listener::Broker, frame).map_err(|e| e.to_string())?;
        let (response, done): (ResponseKind, Result<Option<Authenticated>, String>) =
            match (request, &mut exchange) {
                (RequestKind::SaslHandshake(req), Exchange::Start) => {
                    let (response, chosen) = sasl_handshake::handle(&enabled, &req);
                    let next = match chosen {
                        Some(Mechanism::Plain) => Ok(Exchange::Plain),
                        Some(Mechanism::OAuthBearer) if oauth.is_some() => Ok(Exchange::OAuth),
                        Some(m) => match m.scram() {
                            Some(hash) => Ok(Exchange::Scram(m, Box::new(ScramServer::new(hash)))),
                            None => Err(format!("mechanism {} has no exchange", m.name())),
                        },
                        None => Err(format!("unsupported SASL mechanism {}", req.mechanism)),
                    };
                    match next {
                        Ok(next) => {
                            exchange = next;
                            bare_tokens = version == 0;
                            (response.into(), Ok(None))
                        }
                        Err(why) => (response.into(), Err(why)),
                    }
                }
                (
                    RequestKind::SaslAuthenticate(req),
                    Exchange::Plain
                    | Exchange::Scram(..)
                    | Exchange::OAuth
                    | Exchange::OAuthRefused(_),
                ) => {
                    let (response, done) =
                        sasl_step(ctx, listener_name, oauth, &mut exchange, req).await;
                    finish_step(ctx, listener_name, previous, response, done)
                }
                (RequestKind::SaslHandshake(_), _) => (
                    sasl_handshake::out_of_turn().into(),
                    Err("a second SaslHandshake".into()),
                ),
                (RequestKind::SaslAuthenticate(_), _) => (
                    sasl_authenticate::out_of_turn().into(),
                    Err("SaslAuthenticate before SaslHandshake".into()),
                ),
                (_, _) => return Err(format!("unexpected {key:?} request before authentication")),
            };
        let frame =
            encode_response(key, version, correlation_id, &response).map_err(|e| e.to_string())?;
        io.write(frame).await?;
        if let Some(session) = done? {
            return Ok(session);
        }
    }
}

/// What a mechanism proved: the principal, and when its credential expires (an OAUTHBEARER
/// token's `exp`, in seconds since the epoch).
struct Proved {
    principal: Principal,
    mechanism: Mechanism,
    credential_expires_s: Option<u64>,
}

impl Proved {
    /// The session this proof starts; a re-authentication must prove the same principal.
    fn session(
        self,
        ctx: &Ctx,
        listener: &str,
        previous: Option<&Authenticated>,
    ) -> Result<Authenticated, String> {
        if let Some(p) = previous {
            if p.principal != self.principal {
                return Err(format!(
                    "Cannot change principals during re-authentication from {}: {}",
                    p.principal, self.principal
                ));
            }
        }
        let lifetime = ctx
            .config
            .max_reauth(listener, self.mechanism.name())
            .map(|max| match self.credential_expires_s {
                // `exp` is the client's claim: any u64 (a huge one must not wrap).
                Some(exp) => {
                    let now = crate::clock::now_ms().max(0) as u64;
                    let left = exp.saturating_mul(1000).saturating_sub(now);
                    max.min(Duration::from_millis(left))
                }
                None => max,
            });
        Ok(Authenticated {
            principal: self.principal,
            mechanism: self.mechanism,
            expires: lifetime.map(|l| Instant::now() + l),
        })
    }
}

/// A SaslAuthenticate answer and its outcome, once the session (if the exchange ended) is
/// known: the answer tells the client how long the session lasts, or why it was refused.
fn finish_step(
    ctx: &Ctx,
    listener: &str,
    previous: Option<&Authenticated>,
    mut response: SaslAuthenticateResponse,
    done: Result<Option<Proved>, String>,
) -> (ResponseKind, Result<Option<Authenticated>, String>) {
    let session = match done {
        Ok(Some(proved)) => proved.session(ctx, listener, previous),
        Ok(None) => return (response.into(), Ok(None)),
        Err(why) => return (response.into(), Err(why)),
    };
    match session {
        Ok(session) => {
            // Zero means no expiry, so a session that ends now still says 1 ms.
            response.session_lifetime_ms = session.expires.map_or(0, |t| {
                let left = t.saturating_duration_since(Instant::now()).as_millis();
                i64::try_from(left).unwrap_or(i64::MAX).max(1)
            });
            (response.into(), Ok(Some(session)))
        }
        Err(why) => {
            let error = BrokerError::SaslAuthenticationFailed(why.clone());
            (sasl_authenticate::answer(Err(error)).into(), Err(why))
        }
    }
}

/// Takes one SASL message of the exchange under way; the answer, and the principal once
/// proved (or why the exchange failed, after the failed-login delay).
async fn sasl_step(
    ctx: &Ctx,
    listener_name: &str,
    oauth: Option<&OAuthValidator>,
    exchange: &mut Exchange,
    req: SaslAuthenticateRequest,
) -> (SaslAuthenticateResponse, Result<Option<Proved>, String>) {
    match exchange {
        Exchange::Plain => {
            let users = PlainUsers::from_jaas(
                &ctx.config
                    .listener_config(listener_name, "plain.sasl.jaas.config")
                    .unwrap_or_default(),
            );
            match users.authenticate(&req.auth_bytes) {
                Ok(user) => {
                    record(listener_name, Mechanism::Plain, true);
                    let response = sasl_authenticate::answer(Ok(Vec::new()));
                    let proved = Proved {
                        principal: Principal::user(user),
                        mechanism: Mechanism::Plain,
                        credential_expires_s: None,
                    };
                    (response, Ok(Some(proved)))
                }
                Err(why) => {
                    failed(ctx, listener_name, Mechanism::Plain).await;
                    let error = BrokerError::SaslAuthenticationFailed(why.clone());
                    (sasl_authenticate::answer(Err(error)), Err(why))
                }
            }
        }
        Exchange::Scram(mechanism, server) => {
            let mechanism = *mechanism;
            let image = ctx.controller.image();
            let step = server.step(&req.auth_bytes, |user| {
                image
                    .scram_credentials
                    .get(user)
                    .and_then(|m| m.get(mechanism.name()))
                    .cloned()
            });
            match step {
                Ok(ScramStep::Continue(message)) => {
                    (sasl_authenticate::answer(Ok(message)), Ok(None))
                }
                Ok(ScramStep::Authenticated { user, response }) => {
                    record(listener_name, mechanism, true);
                    let response = sasl_authenticate::answer(Ok(response));
                    let proved = Proved {
                        principal: Principal::user(user),
                        mechanism,
                        credential_expires_s: None,
                    };
                    (response, Ok(Some(proved)))
                }
                Err(why) => {
                    failed(ctx, listener_name, mechanism).await;
                    let error = BrokerError::SaslAuthenticationFailed(why.clone());
                    (sasl_authenticate::answer(Err(error)), Err(why))
                }
            }
        }
        Exchange::OAuth => {
            let now = crate::clock::now_ms().max(0) as u64 / 1000;
            let checked = match oauth {
                Some(v) => bearer_token(&req.auth_bytes).and_then(|t| v.validate(t, now)),
                None => Err("OAUTHBEARER is not configured".into()),
            };
            match checked {
                Ok(token) => {
                    record(listener_name, Mechanism::OAuthBearer, true);
                    let response = sasl_authenticate::answer(Ok(Vec::new()));
                    let proved = Proved {
                        principal: Principal::user(token.subject),
                        mechanism: Mechanism::OAuthBearer,
                        credential_expires_s: token.expires_s,
                    };
                    (response, Ok(Some(proved)))
                }
                // RFC 7628: the error goes back as a server message the client
                // acknowledges; the exchange fails after that.
                Err(why) => {
                    record(listener_name, Mechanism::OAuthBearer, false);
                    *exchange = Exchange::OAuthRefused(why);
                    let error = br#"{"status":"invalid_token"}"#.to_vec();
                    (sasl_authenticate::answer(Ok(error)), Ok(None))
                }
            }
        }
        Exchange::OAuthRefused(why) => {
            let why = format!(
                "Authentication failed during authentication due to invalid credentials with \
                 SASL mechanism OAUTHBEARER: {{\"status\":\"invalid_token\"}} ({why})"
            );
            // Counted when the token was refused; only the delay is left.
            tokio::time::sleep(ctx.config.failed_authentication_delay()).await;
            let error = BrokerError::SaslAuthenticationFailed(why.clone());
            (sasl_authenticate::answer(Err(error)), Err(why))
        }
        Exchange::Start => (
            sasl_authenticate::out_of_turn(),
            Err("SaslAuthenticate before SaslHandshake".into()),
        ),
    }
}

/// Counts an exchange's end.
fn record(listener: &str, mechanism: Mechanism, success: bool) {
    crate::metrics::record_authentication(listener, mechanism.name(), success);
}

/// Counts a failed login and waits `connection.failed.authentication.delay.ms` before it is
/// answered, which slows down password guessing.
async fn failed(ctx: &Ctx, listener: &str, mechanism: Mechanism) {
    record(listener, mechanism, false);
    tokio::time::sleep(ctx.config.failed_authentication_delay()).await;
}

/// ApiVersions, answered as on any broker connection.
async fn api_versions(
    ctx: &Ctx,
    peer: Option<SocketAddr>,
    listener_name: &str,
    frame: Bytes,
) -> Result<Frame, String> {
    let session = Arc::new(Session {
        listener_name: listener_name.to_string(),
        principal: Principal::anonymous(),
    });
    let (next, _) = oneshot::channel();
    let scope = RequestScope::new(
        peer,
        Listener::Broker,
        session,
        Arc::new(ReadAhead::default()),
        next,
    );
    let answer = dispatch(ctx, scope, frame)
        .await
        .map_err(|e| e.to_string())?;
    answer
        .response
        .ok_or_else(|| "ApiVersions had no answer".to_string())
}

/// Reads one frame of at most `max` bytes; its buffer grows as bytes arrive, never to the
/// length the (not yet authenticated) client claims.
async fn read_small_frame(
    reader: &mut (impl AsyncRead + Unpin),
    max: usize,
) -> Result<Bytes, String> {
    let mut prefix = [0u8; 4];
    reader
        .read_exact(&mut prefix)
        .await
        .map_err(|e| format!("closed before authenticating: {e}"))?;
    let claimed = i32::from_be_bytes(prefix);
    let len = usize::try_from(claimed)
        .ok()
        .filter(|l| *l <= max)
        .ok_or_else(|| {
            format!("frame of {claimed} bytes before authentication (sasl.server.max.receive.size {max})")
        })?;
    let mut body = Vec::with_capacity(len.min(4096));
    let read = (&mut *reader)
        .take(len as u64)
        .read_to_end(&mut body)
        .await
        .map_err(|e| e.to_string())?;
    if read < len {
        return Err("closed in the middle of a frame".into());
    }
    Ok(Bytes::from(body))
}

async fn write_frame(writer: &mut (impl AsyncWrite + Unpin), frame: Frame) -> Result<(), String> {
    for part in frame.parts() {
        writer.write_all(part).await.map_err(|e| e.to_string())?;
    }
    writer.flush().await.map_err(|e| e.to_string())
}
