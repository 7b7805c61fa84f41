//! Code shared by the integration tests (and the fuzz targets, which include it by path).
pub mod request_fuzz;
