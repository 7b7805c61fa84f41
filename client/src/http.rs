//! A client for the HTTP admin API (hyper, HTTP/1.1, one request per connection): typed
//! JSON in and out, with the API's [`ErrorReply`] turned into an error.

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpStream;

use crate::admin_api::ErrorReply;

/// GET `path` on `addr`, decoded as `T`.
pub async fn get<T: DeserializeOwned>(addr: &str, path: &str) -> anyhow::Result<T> {
    let (status, bytes) = request(addr, path, None).await?;
    decode(path, status, &bytes)
}

/// POST `body` as JSON to `path` on `addr`; the answer decoded as `T`.
pub async fn post<B: Serialize, T: DeserializeOwned>(
    addr: &str,
    path: &str,
    body: &B,
) -> anyhow::Result<T> {
    let body = Bytes::from(serde_json::to_vec(body)?);
    let (status, bytes) = request(addr, path, Some(body)).await?;
    decode(path, status, &bytes)
}

fn decode<T: DeserializeOwned>(
    path: &str,
    status: hyper::StatusCode,
    bytes: &[u8],
) -> anyhow::Result<T> {
    if !status.is_success() {
        let detail = serde_json::from_slice::<ErrorReply>(bytes)
            .map(|e| e.error)
            .unwrap_or_else(|_| "no details".into());
        bail!("{path}: {status}: {detail}");
    }
    serde_json::from_slice(bytes).with_context(|| format!("{path}: unexpected reply"))
}

/// GET `path` on `addr` as text (e.g. the Prometheus exposition at /metrics).
pub async fn get_text(addr: &str, path: &str) -> anyhow::Result<String> {
    let (status, bytes) = request(addr, path, None).await?;
    if !status.is_success() {
        bail!("{path}: {status}");
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

async fn request(
    addr: &str,
    path: &str,
    body: Option<Bytes>,
) -> anyhow::Result<(hyper::StatusCode, Bytes)> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to the HTTP admin API at {addr}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let builder = Request::builder()
        .uri(path)
        .header(hyper::header::HOST, addr)
        .header(hyper::header::CONTENT_TYPE, "application/json");
    let request = match body {
        Some(b) => builder.method("POST").body(Full::new(b))?,
        None => builder.method("GET").body(Full::new(Bytes::new()))?,
    };
    let response = sender.send_request(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}
