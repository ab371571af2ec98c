use super::*;
use attache_redis_protocol::frame::Version;

fn shared(db: u32) -> Channel {
    Channel::Shared(Setup {
        version: Version::Resp2,
        db,
    })
}

#[test]
fn same_ordered_connection_goes_at_once() {
    for ch in [shared(0), shared(3), Channel::Private(1)] {
        assert!(may_go(ch, ch, || true), "{ch:?}");
    }
}

#[test]
fn another_connection_waits_for_the_unanswered() {
    let pairs = [
        (shared(0), Channel::Private(1)),
        (Channel::Private(1), Channel::Private(2)),
        (Channel::Private(1), shared(0)),
        (shared(0), shared(1)),
        (shared(0), Channel::Blocking),
        (Channel::Blocking, shared(0)),
        (Channel::Blocking, Channel::Blocking),
        (Channel::Private(1), Channel::Blocking),
    ];
    for (last, next) in pairs {
        assert!(!may_go(last, next, || true), "{last:?} -> {next:?}");
        assert!(may_go(last, next, || false), "{last:?} -> {next:?}");
    }
}
