//! `docs/PROTOCOL.md` agrees with the code: every JSON example in it parses as the frame
//! it shows, every frame type is shown, and the close codes it lists are the code's.

use wire::protocol::{ClientFrame, ServerFrame, close};

const DOC: &str = include_str!("../../docs/PROTOCOL.md");

const CLIENT_TYPES: [&str; 6] = ["send", "delivered", "read", "typing", "resume", "ping"];
const SERVER_TYPES: [&str; 11] = [
    "hello",
    "ack",
    "message",
    "status",
    "typing",
    "presence",
    "chat_ended",
    "matched",
    "resumed",
    "error",
    "pong",
];

/// The ```json blocks of the document.
fn json_blocks() -> Vec<serde_json::Value> {
    let mut blocks = Vec::new();
    let mut rest = DOC;
    while let Some(start) = rest.find("```json\n") {
        let body = &rest[start + 8..];
        let end = body.find("```").expect("a closed code block");
        let value = serde_json::from_str(&body[..end])
            .unwrap_or_else(|e| panic!("invalid JSON example ({e}):\n{}", &body[..end]));
        blocks.push(value);
        rest = &body[end + 3..];
    }
    blocks
}

#[test]
fn every_frame_example_parses_as_the_frame_it_shows() {
    let mut client_seen = Vec::new();
    let mut server_seen = Vec::new();
    for block in json_blocks() {
        let Some(kind) = block
            .get("type")
            .and_then(|t| t.as_str())
            .map(str::to_owned)
        else {
            continue;
        };
        let as_client = serde_json::from_value::<ClientFrame>(block.clone());
        let as_server = serde_json::from_value::<ServerFrame>(block.clone());
        assert!(
            as_client.is_ok() || as_server.is_ok(),
            "the example of `{kind}` is no frame: {block}"
        );
        if as_client.is_ok() {
            client_seen.push(kind.clone());
        }
        if let Ok(frame) = as_server {
            // What the server writes for it reads back the same.
            let written = serde_json::to_value(&frame).unwrap();
            assert_eq!(
                serde_json::from_value::<ServerFrame>(written).unwrap(),
                frame
            );
            server_seen.push(kind);
        }
    }
    for kind in CLIENT_TYPES {
        assert!(
            client_seen.iter().any(|k| k == kind),
            "no example of client `{kind}`"
        );
    }
    for kind in SERVER_TYPES {
        assert!(
            server_seen.iter().any(|k| k == kind),
            "no example of server `{kind}`"
        );
    }
}

#[test]
fn the_documented_close_codes_are_the_servers() {
    for code in [
        close::NORMAL,
        close::GOING_AWAY,
        close::UNSUPPORTED_DATA,
        close::MESSAGE_TOO_BIG,
        close::IDLE_TIMEOUT,
        close::TOKEN_EXPIRED,
        close::SLOW_CONSUMER,
        close::RATE_LIMITED,
        close::TOO_MANY_CONNECTIONS,
        close::INTERNAL_ERROR,
    ] {
        assert!(
            DOC.contains(&format!("| {code} |")),
            "close code {code} is not in the close code table"
        );
    }
}

#[test]
fn the_documented_frame_limit_is_the_servers() {
    assert!(DOC.contains(&wire::protocol::MAX_FRAME_BYTES.to_string()));
    assert!(DOC.contains(&format!(
        "protocol version, {}",
        wire::protocol::PROTOCOL_VERSION
    )));
}
