//! Chat hooks live on https: a hook URL with `https` is sent over TLS (the client is built with
//! rustls and webpki roots, so no system certificate store is needed).
use skylark_alarm::{Delivery, DeliveryConfig, Dispatcher};
use skylark_core::telemetry::Telemetry;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_hook_opens_a_tls_handshake_and_a_failed_one_is_counted() {
    // A loopback server that only reads what the client sends first, then hangs up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let first_bytes = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = [0u8; 3];
        socket.read_exact(&mut head).await.unwrap();
        head
    });
    let telemetry = Arc::new(Telemetry::new());
    let dispatcher = Dispatcher::start(
        DeliveryConfig {
            max_attempts: 1,
            timeout: Duration::from_secs(10),
            ..DeliveryConfig::default()
        },
        telemetry.clone(),
    );
    dispatcher.submit(Delivery {
        hook: "wechat",
        url: format!("https://127.0.0.1:{port}/cgi-bin/webhook/send?key=k"),
        body: "{}".into(),
        headers: Vec::new(),
        token: None,
    });
    let head = tokio::time::timeout(Duration::from_secs(10), first_bytes)
        .await
        .expect("the hook connected")
        .unwrap();
    // A TLS record of type handshake (the ClientHello), not a plain HTTP request line.
    assert_eq!(head[0], 0x16, "{head:?}");
    assert_eq!(head[1], 0x03, "{head:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = telemetry.render();
        if text
            .contains("skylark_alarm_hook_deliveries_total{hook=\"wechat\",outcome=\"failed\"} 1")
        {
            assert!(
                text.contains(
                    "skylark_alarm_hook_failures_total{hook=\"wechat\",reason=\"connect\"} 1"
                ),
                "{text}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
