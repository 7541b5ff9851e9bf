//! lal
