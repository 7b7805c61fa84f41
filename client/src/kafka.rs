//! A minimal Kafka protocol client (`sluice admin`, the broker's follower fetchers): one
//! connection, one request at a time, typed by kafka-protocol's `Request` trait.

use anyhow::{anyhow, bail, Context};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::security::ClientSecurity;

/// A connection's byte stream: TCP, or TLS over it.
pub(crate) type Stream = Box<dyn AsyncReadWrite>;

/// What a connection's stream does.
pub(crate) trait AsyncReadWrite: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncReadWrite for T {}

/// Largest response accepted.
const MAX_RESPONSE: usize = 256 << 20;

/// A connection to one broker.
pub struct KafkaClient {
    stream: Stream,
    security: ClientSecurity,
    correlation_id: i32,
    client_id: &'static str,
}

/// The client id requests carry unless [`KafkaClient::with_client_id`] says otherwise.
pub const DEFAULT_CLIENT_ID: &str = "sluice";

impl KafkaClient {
    /// Connects to `addr` (`host:port`) in plaintext.
    pub async fn connect(addr: &str) -> anyhow::Result<Self> {
        Self::connect_with(addr, &ClientSecurity::default()).await
    }

    /// Connects to `addr` with TLS and SASL as `security` says.
    pub async fn connect_with(addr: &str, security: &ClientSecurity) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to the Kafka listener at {addr}"))?;
        let _ = tcp.set_nodelay(true);
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let mut client = Self {
            stream: security.secure(tcp, host).await?,
            security: security.clone(),
            correlation_id: 0,
            client_id: DEFAULT_CLIENT_ID,
        };
        security.authenticate(&mut client).await?;
        Ok(client)
    }

    /// Connects to another broker (`addr`) the way this connection was made.
    pub async fn connect_like(&self, addr: &str) -> anyhow::Result<Self> {
        Self::connect_with(addr, &self.security).await
    }

    /// Sends every later request with `client_id` (how a broker tells its peers' forwarded
    /// requests from a client's).
    pub fn with_client_id(mut self, client_id: &'static str) -> Self {
        self.client_id = client_id;
        self
    }

    /// Sends `req` at `version` and decodes its response.
    pub async fn send<R: Request>(&mut self, req: &R, version: i16) -> anyhow::Result<R::Response> {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(self.client_id)));
        let mut body = BytesMut::new();
        header.encode(&mut body, R::header_version(version))?;
        req.encode(&mut body, version)?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).await?;

        let len = self.stream.read_i32().await? as usize;
        if len > MAX_RESPONSE {
            bail!("response of {len} bytes is too large");
        }
        let mut buf = vec![0u8; len];
        self.stream.read_exact(&mut buf).await?;
        let mut buf = Bytes::from(buf);
        let header = ResponseHeader::decode(&mut buf, R::Response::header_version(version))?;
        if header.correlation_id != self.correlation_id {
            return Err(anyhow!("response out of order"));
        }
        let response = R::Response::decode(&mut buf, version)?;
        if buf.has_remaining() {
            tracing::debug!(left = buf.remaining(), "trailing bytes in response");
        }
        Ok(response)
    }
}
