//! virtio-net PMD (in progress).
