//! ws-handler
