//! The SDK's demo conversation — sign up, queue, match, messages, delivered and read
//! statuses, Next — against the one-process platform, through its gateway.

#[allow(dead_code)]
#[path = "../../client-sdk/examples/demo.rs"]
mod demo;

use random_chats::{Platform, PlatformConfig};

#[tokio::test]
async fn the_demo_conversation_completes_on_the_one_process_platform() {
    let platform = Platform::start(PlatformConfig::in_memory()).await.unwrap();

    let result = demo::run(&platform.gateway_url()).await;

    platform.shutdown().await;
    result.expect("every step of the demo happened");
}
