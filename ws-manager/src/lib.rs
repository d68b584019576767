//! ws-manager
