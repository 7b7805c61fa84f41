//! ApiVersions: the APIs and versions this broker speaks.

use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, RequestHeader};

use crate::context::Ctx;
use crate::dispatch::api_versions;

/// Lists every supported API (unsupported request versions are answered in dispatch).
pub async fn handle(
    _ctx: &Ctx,
    _header: &RequestHeader,
    _req: ApiVersionsRequest,
) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_versions())
}
