//! arp: to be written.
