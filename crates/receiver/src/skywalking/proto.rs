//! Generated from `proto/skywalking/v3/tracing.proto` by build.rs: prost messages, the tonic
//! service (server, and a client for the tests) and pbjson's proto3-JSON serde impls.
#![allow(dead_code, missing_docs, unreachable_pub, clippy::all)]

tonic::include_proto!("skywalking.v3");
include!(concat!(env!("OUT_DIR"), "/skywalking.v3.serde.rs"));
