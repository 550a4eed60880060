//! ethernet: to be written.
