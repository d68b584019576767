//! matching-service
