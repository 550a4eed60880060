//! tinyvm harness helpers (in progress).
