//! Route (HTTP): which configured route serves a request, by Host header
//! and path prefix (first match in file order), and the path the upstream
//! then sees (prefix stripped or rewritten).

use crate::config::http::RouteConfig;

/// The routes of one listener, ready to match.
#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<Matcher>,
}

#[derive(Debug, Clone)]
struct Matcher {
    prefix: String,
    /// Lower-cased; `Some(".example.com")` for `*.example.com`.
    host: Option<HostMatch>,
    replace: Option<String>,
}

#[derive(Debug, Clone)]
enum HostMatch {
    Exact(String),
    Suffix(String),
}

impl Router {
    pub fn new(routes: &[RouteConfig]) -> Self {
        let routes = routes
            .iter()
            .map(|r| Matcher {
                prefix: r.prefix.clone(),
                host: r.host.as_deref().map(|h| {
                    let h = h.to_ascii_lowercase();
                    match h.strip_prefix('*') {
                        Some(suffix) => HostMatch::Suffix(suffix.to_owned()),
                        None => HostMatch::Exact(h),
                    }
                }),
                replace: match (&r.rewrite, r.strip_prefix) {
                    (Some(rw), _) => Some(rw.clone()),
                    (None, true) => Some(String::new()),
                    (None, false) => None,
                },
            })
            .collect();
        Self { routes }
    }

    /// The index of the first route matching `host` (port ignored) and
    /// `path`.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<usize> {
        let host = host.map(strip_port);
        self.routes.iter().position(|m| {
            path.starts_with(m.prefix.as_str())
                && match (&m.host, host) {
                    (None, _) => true,
                    (Some(_), None) => false,
                    (Some(HostMatch::Exact(want)), Some(h)) => h.eq_ignore_ascii_case(want),
                    (Some(HostMatch::Suffix(sfx)), Some(h)) => {
                        h.len() > sfx.len()
                            && h.is_char_boundary(h.len() - sfx.len())
                            && h[h.len() - sfx.len()..].eq_ignore_ascii_case(sfx)
                    }
                }
        })
    }

    /// The path and query the upstream sees for `route`; `None` when the
    /// route leaves it as it is.
    pub fn rewrite(&self, route: usize, path_and_query: &str) -> Option<String> {
        let m = self.routes.get(route)?;
        let replace = m.replace.as_deref()?;
        let rest = path_and_query.get(m.prefix.len()..).unwrap_or("");
        let mut out = String::with_capacity(replace.len() + rest.len() + 1);
        out.push_str(replace);
        // Keep the result a valid origin-form target: `/payments` stripped
        // of `/payments` is `/`, and `?q` alone becomes `/?q`.
        if !out.starts_with('/') && !rest.starts_with('/') {
            out.push('/');
        }
        if out.ends_with('/') && rest.starts_with('/') {
            out.pop();
        }
        out.push_str(rest);
        Some(out)
    }
}

/// `host:port` → `host`; `[::1]:80` → `[::1]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests;
