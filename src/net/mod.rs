//! TLS in and out, and the HTTP plumbing every endpoint shares: the outbound client builder
//! ([`http`]), the listeners' accept loop with TLS and input limits ([`serve`]), PEM files,
//! certificate/key checks and reloadable server certificates ([`tls`]), and error texts that
//! are safe to log ([`error`]).
//!
//! Crypto provider: rustls with **ring**, not aws-lc-rs. ring builds with nothing but a C
//! compiler for the target (Debian's `gcc-aarch64-linux-gnu` / `gcc-arm-linux-gnueabihf`,
//! which the 40-deb tier already installs), while aws-lc-sys also needs CMake (and for armv7
//! bindgen with libclang) in the cross build, and links a larger library into a binary held
//! under 12 MiB. Every rustls user here (reqwest's `rustls-tls-manual-roots`, tokio-rustls)
//! is built with `ring` and without aws-lc: `cargo tree -i aws-lc-rs` finds nothing.

pub mod error;
pub mod http;
pub mod serve;
pub mod tls;
