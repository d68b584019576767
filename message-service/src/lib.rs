//! message-service
