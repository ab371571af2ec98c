//! Shared by every step of accept → parse → route → backend → respond: a
//! gauge unit held for as long as something lives (a connected client, a
//! waiting checkout), counted down however that ends, early return,
//! error or cancellation included.

use std::sync::atomic::{AtomicUsize, Ordering};

/// One unit of `gauge`, from `new` until dropped.
pub struct Held<'a>(&'a AtomicUsize);

impl<'a> Held<'a> {
    pub fn new(gauge: &'a AtomicUsize) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Self(gauge)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
