//! The whole Random Chats platform in one process.

fn main() {}
