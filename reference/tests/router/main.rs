//! The reference router, exercised family by family with real WebSocket clients on
//! 127.0.0.1:0 (one test binary; one module per requirement family).

mod auth;
mod common;
mod connection;
mod heartbeat;
mod hostile;
mod isolation;
mod operations;
mod routing;
mod sequence;
