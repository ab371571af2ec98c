use std::time::Duration;

use http_body_util::BodyExt;

use super::*;

#[tokio::test]
async fn every_local_error_names_its_cause() {
    let cases = [
        (LocalError::NoRoute("/x".into()), 404, "no-route"),
        (LocalError::Overflow("p".into()), 503, "overflow"),
        (
            LocalError::RequestBodyTimeout(Duration::from_secs(1)),
            408,
            "request-timeout",
        ),
        (
            LocalError::TransferCoding("gzip".into()),
            502,
            "transfer-coding",
        ),
        (
            LocalError::RequestTransferCoding("gzip, chunked".into()),
            501,
            "transfer-coding",
        ),
        (LocalError::Ejected("p".into()), 503, "ejected"),
        (LocalError::Timeout(Duration::from_secs(1)), 504, "timeout"),
        (
            LocalError::RequestTimeout(Duration::from_secs(1)),
            408,
            "request-timeout",
        ),
        (
            LocalError::TlsVerify("a:1".into(), "unknown issuer".into()),
            502,
            "tls-verify-failed",
        ),
        (
            LocalError::TlsRejected("a:1".into(), "CertificateRequired".into()),
            502,
            "tls-rejected",
        ),
        (
            LocalError::BudgetExhausted(
                "p".into(),
                Box::new(LocalError::ConnectFailure("a:1".into(), "refused".into())),
            ),
            503,
            "connect-failure",
        ),
    ];
    for (err, status, cause) in cases {
        let resp = err.response(None);
        assert_eq!(resp.status().as_u16(), status, "{err}");
        assert_eq!(resp.headers()["x-attache-error"], cause);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert_eq!(text, format!("attaché: {err}\n"));
    }
}
