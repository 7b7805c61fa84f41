//! The HTTP admin API client for `sluice admin` (hyper, HTTP/1.1, one request per
//! connection).

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// GET (body None) or POST a JSON body to `path` on `addr`; returns the JSON answer.
pub async fn call(addr: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
    let (status, bytes) = request(addr, path, body).await?;
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "{path}: {status}: {}",
            value["error"].as_str().unwrap_or("no details")
        );
    }
    Ok(value)
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
    body: Option<&Value>,
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
        Some(b) => builder
            .method("POST")
            .body(Full::new(Bytes::from(serde_json::to_vec(b)?)))?,
        None => builder.method("GET").body(Full::new(Bytes::new()))?,
    };
    let response = sender.send_request(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}
