//! End to end against the whole platform in memory on loopback: a tiny conversation and a
//! tiny idle run, whose counts must agree (everything sent is acked and delivered, every
//! connection opened is held).

use std::time::Duration;

use loadgen::client::{SetupOptions, Target};
use loadgen::conversation::{self, ConversationOptions};
use loadgen::findmax::PassRule;
use loadgen::idle::{self, IdleOptions};
use random_chats::{Platform, PlatformConfig};

/// The platform in memory, with per-connection limits above what the load needs (the
/// defaults allow 5 sends per second per connection).
async fn platform() -> Platform {
    let mut config = PlatformConfig::in_memory();
    config.ws_handler.send_per_sec = 10_000.0;
    config.ws_handler.send_burst = 10_000;
    config.ws_handler.frames_per_sec = 10_000.0;
    config.ws_handler.frames_burst = 10_000;
    Platform::start(config).await.expect("the platform starts")
}

fn setup(second_octet: u8) -> SetupOptions {
    SetupOptions {
        source_net: [127, second_octet],
        users_per_address: 20,
        concurrency: 4,
        login: true,
        seed: 7,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_conversation_is_all_acked_and_delivered() {
    let platform = platform().await;
    let target = Target::parse(&platform.gateway_url()).unwrap();
    let options = ConversationOptions {
        pairs: 2,
        rate: 50.0,
        warmup: Duration::from_millis(200),
        duration: Duration::from_secs(1),
        // An upper bound: the step ends as soon as everything is acked and delivered.
        drain: Duration::from_secs(20),
        text_bytes: 64,
        delivered_receipts: true,
        server_pids: vec![std::process::id()],
        rule: PassRule::default(),
        findmax: None,
        setup: setup(78),
    };

    let report = conversation::run(&target, &options).await.expect("the run");

    assert_eq!(report.pairs, 2);
    let [step] = &report.steps[..] else {
        panic!("one step expected: {report:?}")
    };
    assert_eq!(step.sent, 50, "50 msg/s for 1 s after the warm-up");
    assert_eq!(step.acked, step.sent, "{step:?}");
    assert_eq!(step.delivered, step.sent, "{step:?}");
    assert_eq!(step.receive.count, step.sent);
    assert_eq!(step.ack.count, step.sent);
    assert!(step.receive.max_ms.is_some() && step.receive.p99_ms.is_some());
    assert!(step.errors.is_empty(), "{:?}", step.errors);
    assert_eq!(step.disconnects, 0);
    assert!(step.server_cpu_s.is_some());
    assert_eq!(step.delivered_ratio, 1.0);
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_idle_run_holds_every_connection() {
    let platform = platform().await;
    let target = Target::parse(&platform.gateway_url()).unwrap();
    let options = IdleOptions {
        connections: 6,
        processes: 2,
        connections_per_user: 2,
        connect_concurrency: 4,
        server_pid: Some(std::process::id()),
        settle: Duration::ZERO,
        hold: Duration::ZERO,
        worker_exe: Some(env!("CARGO_BIN_EXE_loadgen").into()),
        setup: setup(79),
    };

    let report = idle::run(&target, &options).await.expect("the run");

    assert_eq!(report.users, 3);
    assert_eq!(report.processes, 2);
    assert_eq!(report.connected, 6, "{report:?}");
    assert_eq!(report.failed, 0);
    assert_eq!(report.lost, 0);
    assert!(report.rss_before_kib.is_some() && report.rss_after_kib.is_some());
    assert!(report.kib_per_connection.is_some());
    platform.shutdown().await;
}
