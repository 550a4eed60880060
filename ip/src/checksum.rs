//! checksum: to be written.
