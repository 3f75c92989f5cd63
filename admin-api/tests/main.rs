//! The admin API's integration tests, one module per area, built as one test binary.

mod common;
mod openapi;
mod rest_auth;
mod rest_routes;
