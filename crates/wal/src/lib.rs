//! Skylark's data layer between the rules and storage: the write-ahead log ([`wal`]), the
//! [`durable`] sink that acknowledges a request only once the log holds it, and the log's compact
//! encoding of metric batches ([`batch_codec`]).
//!
//! The sink does not know the rules: it asks a [`WritePath`] (the server's pipeline) to turn a
//! request into [`Effects`], and writes those to storage in log order. Data flows one way: the
//! server depends on this crate, never the reverse.
#![warn(missing_docs, unreachable_pub)]

pub mod batch_codec;
pub mod durable;
mod error;
pub mod wal;

pub use durable::{
    Durability, DurabilitySettings, DurableSink, Effects, ReplayReport, WritePath,
    SHUTDOWN_DEADLINE, SHUTDOWN_GRACE,
};
pub use error::{Error, Result};
pub use wal::Wal;
