//! udp: to be written.
