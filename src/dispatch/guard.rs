//! The outbound guard: no delivery reaches an address that is not on the
//! public internet unless the operator allows it (`[network]`).
//!
//! Endpoint URLs come from tenants, who must not be able to make hookline
//! POST into the operator's network (loopback, private ranges, the cloud
//! metadata service on link-local) and read the answer back. So every new
//! connection resolves its host here, judges every address the name
//! resolves to, and connects only to an address it judged: there is no
//! second lookup for DNS to answer differently (rebinding). Literal IPs, in
//! whatever spelling the URL parser accepted, are judged the same way, and
//! IPv6 forms that embed an IPv4 address are judged by that address.
//! Pooled keep-alive connections were judged when they were opened.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::config::{NetworkConfig, ProxyUrl};

/// What a tenant is told about a blocked destination: never the address or
/// the rule, which would map the operator's internal DNS for them.
pub const TENANT_MESSAGE: &str = "the URL's host resolves to an address that is not allowed";

/// The built-in block list: the IANA special-purpose registries' ranges that
/// are not globally reachable, multicast and broadcast, with what each is.
/// The IPv6 forms that embed an IPv4 address are not listed: they are judged
/// by the address they embed (see [`embedded_ipv4`]).
const BLOCKED: &[(&str, &str)] = &[
    ("0.0.0.0/8", "this network"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    // Before the reserved range that contains it, so it is named for what it is.
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    ("2001:2::/48", "benchmarking"),
    ("2001:10::/28", "ORCHID"),
    ("2001:20::/28", "ORCHIDv2"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
];

static BLOCK_LIST: LazyLock<Vec<(IpNet, &'static str)>> = LazyLock::new(|| {
    BLOCKED
        .iter()
        .filter_map(|(net, what)| net.parse().ok().map(|net| (net, *what)))
        .collect()
});

/// Why one address may not be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub address: IpAddr,
    /// The rule that blocked it, e.g. `loopback 127.0.0.0/8` or
    /// `network.deny 10.1.0.0/16`.
    pub rule: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.address, self.rule)
    }
}

/// A destination the guard refused: every address its host resolves to is
/// blocked. The detail is for operators (logs, audit, admin views).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct BlockedDestination {
    pub host: String,
    pub refusals: Vec<Refusal>,
}

impl fmt::Display for BlockedDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self.refusals.iter().map(Refusal::to_string).collect();
        match self.refusals.as_slice() {
            // The URL named the address itself.
            [only] if only.address.to_string() == self.host => {
                write!(f, "the address {only} is not allowed")
            }
            _ => write!(
                f,
                "{} resolves only to addresses that are not allowed: {}",
                self.host,
                shown.join(", ")
            ),
        }
    }
}

/// Which addresses deliveries may reach: the block list, lifted by
/// `network.allow`, extended by `network.deny` (which wins over `allow`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

impl Policy {
    pub fn new(network: &NetworkConfig) -> Policy {
        Policy {
            allow: network.allow.clone(),
            deny: network.deny.clone(),
        }
    }

    /// Whether a delivery may connect to `address`. An IPv6 form that
    /// embeds IPv4 addresses is judged by what it embeds. `deny` wins over
    /// everything, `allow` over the block list.
    pub fn judge(&self, address: IpAddr) -> Result<(), Refusal> {
        let embedded: Vec<IpAddr> = embedded_ipv4(address).into_iter().map(IpAddr::V4).collect();
        let judged = if embedded.is_empty() {
            vec![address]
        } else {
            embedded
        };
        let refuse = |rule: String| Refusal { address, rule };
        for candidate in std::iter::once(address).chain(judged.iter().copied()) {
            if let Some(net) = self.deny.iter().find(|net| net.contains(&candidate)) {
                return Err(refuse(format!("network.deny {net}")));
            }
        }
        if self.allows(address) {
            return Ok(());
        }
        for candidate in judged {
            if self.allows(candidate) {
                continue;
            }
            if let Some((net, what)) = BLOCK_LIST.iter().find(|(net, _)| net.contains(&candidate)) {
                return Err(refuse(if candidate == address {
                    format!("{what} {net}")
                } else {
                    format!("{what} {net}, embedded as {candidate}")
                }));
            }
        }
        Ok(())
    }

    fn allows(&self, address: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(&address))
    }

    /// The addresses of `host` a delivery may connect to, in resolution
    /// order; refused when there are none.
    pub fn filter(
        &self,
        host: &str,
        addresses: impl IntoIterator<Item = IpAddr>,
    ) -> Result<Vec<IpAddr>, BlockedDestination> {
        let mut allowed = Vec::new();
        let mut refusals = Vec::new();
        for address in addresses {
            match self.judge(address) {
                Ok(()) => allowed.push(address),
                Err(refusal) => refusals.push(refusal),
            }
        }
        if allowed.is_empty() {
            return Err(BlockedDestination {
                host: host.to_string(),
                refusals,
            });
        }
        Ok(allowed)
    }
}

/// The IPv4 addresses an IPv6 address carries: IPv4-mapped
/// (`::ffff:0:0/96`), IPv4-compatible (`::/96`, deprecated), NAT64
/// (`64:ff9b::/96`), 6to4 (`2002::/16`) and Teredo (`2001::/32`, both its
/// server and its obfuscated client address).
pub fn embedded_ipv4(address: IpAddr) -> Vec<Ipv4Addr> {
    let IpAddr::V6(v6) = address else {
        return Vec::new();
    };
    let s = v6.segments();
    let low32 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        // IPv4-mapped.
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => vec![low32(hi, lo)],
        // IPv4-compatible, except `::` and `::1`, which the block list names.
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) != (0, 0) && (hi, lo) != (0, 1) => {
            vec![low32(hi, lo)]
        }
        // NAT64 well-known prefix.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => vec![low32(hi, lo)],
        // 6to4: the IPv4 address follows the prefix.
        [0x2002, hi, lo, ..] => vec![low32(hi, lo)],
        // Teredo: the server, then the client with its bits inverted.
        [0x2001, 0, server_hi, server_lo, _, _, client_hi, client_lo] => {
            vec![low32(server_hi, server_lo), low32(!client_hi, !client_lo)]
        }
        _ => Vec::new(),
    }
}

/// How the guard finds the addresses of a host name: the system's resolver,
/// or a test's.
pub trait Resolve: Send + Sync + 'static {
    fn resolve(&self, host: &str) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;
}

/// The operating system's resolver (getaddrinfo, off the async threads).
#[derive(Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>> {
        let host = host.to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let mut addresses: Vec<IpAddr> = Vec::new();
            for address in found.map(|a| a.ip()) {
                if !addresses.contains(&address) {
                    addresses.push(address);
                }
            }
            Ok(addresses)
        })
    }
}

/// Why the guard did not connect.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Blocked(#[from] BlockedDestination),
    #[error("dns error: {host}: {source}")]
    Dns {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("the URL has no host")]
    NoHost,
    #[error("tcp connect error: {0}")]
    Connect(#[source] io::Error),
    #[error("proxy {proxy}: {reason}")]
    Proxy { proxy: String, reason: String },
}

/// The guard as the dispatcher's HTTP client and `ops` use it: the policy,
/// the resolver, and the egress proxy, if any. Cheap to clone.
#[derive(Clone)]
pub struct Guard {
    policy: Arc<Policy>,
    resolver: Arc<dyn Resolve>,
    proxy: Option<Arc<ProxyUrl>>,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("policy", &self.policy)
            .field("proxy", &self.proxy)
            .finish()
    }
}

impl Guard {
    /// The guard `[network]` describes, resolving through the system.
    pub fn new(network: &NetworkConfig) -> Guard {
        Guard::with_resolver(network, Arc::new(SystemResolver))
    }

    /// The same with another resolver (tests answer DNS themselves).
    pub fn with_resolver(network: &NetworkConfig, resolver: Arc<dyn Resolve>) -> Guard {
        Guard {
            policy: Arc::new(Policy::new(network)),
            resolver,
            proxy: network.proxy.clone().map(Arc::new),
        }
    }

    /// The policy addresses are judged by.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The egress proxy connections go through, if `[network] proxy` names one.
    pub fn proxy(&self) -> Option<String> {
        self.proxy.as_ref().map(|proxy| proxy.to_string())
    }

    /// Every address `host` resolves to, unjudged (a probe shows which the
    /// policy allows); an IP literal is its own address.
    pub async fn resolve_all(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(literal) => Ok(vec![literal]),
            Err(_) => self.resolver.resolve(bare).await,
        }
    }

    /// The addresses of `host` (a name, or an IP literal, bracketed or not)
    /// a connection may go to, in resolution order.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, ConnectError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.is_empty() {
            return Err(ConnectError::NoHost);
        }
        let found = match bare.parse::<IpAddr>() {
            Ok(literal) => vec![literal],
            Err(_) => self
                .resolver
                .resolve(bare)
                .await
                .map_err(|source| ConnectError::Dns {
                    host: bare.to_string(),
                    source,
                })?,
        };
        Ok(self.policy.filter(bare, found)?)
    }

    /// Whether an endpoint URL may be registered: refused when its literal
    /// IP is blocked, or its host resolves only to blocked addresses. A name
    /// that does not resolve (yet) is accepted: DNS may come later.
    pub async fn check_url(&self, url: &str) -> Result<(), BlockedDestination> {
        let Ok(parsed) = reqwest::Url::parse(url) else {
            return Ok(());
        };
        let Some(host) = parsed.host_str() else {
            return Ok(());
        };
        match self.addresses(host).await {
            Err(ConnectError::Blocked(blocked)) => Err(blocked),
            _ => Ok(()),
        }
    }

    /// Whether `url`'s host is an IP literal the policy blocks: a judgement
    /// that needs no lookup, for screens that must not wait on DNS.
    pub fn literal_blocked(&self, url: &str) -> Option<BlockedDestination> {
        let parsed = reqwest::Url::parse(url).ok()?;
        let host = parsed.host_str()?;
        let address: IpAddr = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?;
        self.policy.filter(&address.to_string(), [address]).err()
    }

    /// Opens a connection for `uri`: to one of its judged addresses, or
    /// through the proxy to one of them.
    async fn connect(&self, uri: http::Uri) -> Result<GuardedStream, ConnectError> {
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let addresses = self.addresses(uri.host().unwrap_or_default()).await?;
        let Some(proxy) = &self.proxy else {
            let stream = connect_any(&addresses, port).await?;
            return Ok(GuardedStream::new(stream, false));
        };
        let proxied = |reason: String| ConnectError::Proxy {
            proxy: proxy.to_string(),
            reason,
        };
        // The proxy is the operator's own: its address is exempt.
        let proxy_addresses: Vec<IpAddr> = match proxy.host.parse::<IpAddr>() {
            Ok(literal) => vec![literal],
            Err(_) => SystemResolver
                .resolve(&proxy.host)
                .await
                .map_err(|e| proxied(format!("cannot resolve it: {e}")))?,
        };
        let mut stream = connect_any(&proxy_addresses, proxy.port)
            .await
            .map_err(|e| proxied(e.to_string()))?;
        if !https {
            // http: the request goes to the proxy in absolute form.
            return Ok(GuardedStream::new(stream, true));
        }
        // https: a tunnel to the judged address; TLS inside it still
        // names (and verifies) the endpoint's host.
        let target = SocketAddr::new(addresses[0], port);
        tunnel(&mut stream, target).await.map_err(proxied)?;
        Ok(GuardedStream::new(stream, false))
    }
}

/// Connects to the first of `addresses` that answers on `port`.
async fn connect_any(addresses: &[IpAddr], port: u16) -> Result<TcpStream, ConnectError> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
    for address in addresses {
        match TcpStream::connect(SocketAddr::new(*address, port)).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(err) => last = err,
        }
    }
    Err(ConnectError::Connect(last))
}

/// Longest proxy answer to a `CONNECT` that is read.
const MAX_CONNECT_ANSWER: usize = 8 * 1024;

/// Asks the proxy on `stream` for a tunnel to `target`; fails unless it
/// answers 2xx.
async fn tunnel(stream: &mut TcpStream, target: SocketAddr) -> Result<(), String> {
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("CONNECT failed: {e}"))?;
    let mut answer = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    // Byte by byte: nothing after the head may be taken from the tunnel.
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() >= MAX_CONNECT_ANSWER {
            return Err("the answer to CONNECT is too long".to_string());
        }
        match stream.read(&mut byte).await {
            Ok(0) => return Err("closed the connection during CONNECT".to_string()),
            Ok(_) => answer.push(byte[0]),
            Err(e) => return Err(format!("CONNECT failed: {e}")),
        }
    }
    let head = String::from_utf8_lossy(&answer);
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line.split_whitespace().nth(1).unwrap_or_default();
    if status.starts_with('2') {
        Ok(())
    } else {
        Err(format!("refused the tunnel to {target}: {status_line}"))
    }
}

/// A connection the guard opened, as the HTTP client sees it.
pub struct GuardedStream {
    io: TokioIo<TcpStream>,
    /// Plain HTTP through the proxy: requests go in absolute form.
    via_proxy: bool,
}

impl GuardedStream {
    fn new(stream: TcpStream, via_proxy: bool) -> GuardedStream {
        GuardedStream {
            io: TokioIo::new(stream),
            via_proxy,
        }
    }
}

impl Connection for GuardedStream {
    fn connected(&self) -> Connected {
        Connected::new().proxy(self.via_proxy)
    }
}

impl hyper::rt::Read for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The guard as the HTTP client's connector: every new connection goes
/// through the guard: resolved, judged, then connected.
#[derive(Clone, Debug)]
pub struct GuardedConnector {
    guard: Guard,
}

impl GuardedConnector {
    pub fn new(guard: Guard) -> GuardedConnector {
        GuardedConnector { guard }
    }
}

impl tower_service::Service<http::Uri> for GuardedConnector {
    type Response = GuardedStream;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<GuardedStream, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let guard = self.guard.clone();
        Box::pin(async move { Ok(guard.connect(uri).await?) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], deny: &[&str]) -> Policy {
        let nets = |list: &[&str]| {
            list.iter()
                .map(|n| crate::config::parse_network(n).expect("network"))
                .collect()
        };
        Policy::new(&NetworkConfig {
            allow: nets(allow),
            deny: nets(deny),
            proxy: None,
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn every_built_in_range_parses() {
        assert_eq!(BLOCK_LIST.len(), BLOCKED.len());
    }

    #[test]
    fn the_block_list_covers_every_special_range() {
        let default = policy(&[], &[]);
        let blocked = [
            ("0.1.2.3", "this network"),
            ("10.1.2.3", "private"),
            ("100.64.0.1", "shared address space"),
            ("100.127.255.254", "shared address space"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("169.254.169.254", "link-local"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.0.0.9", "IETF protocol assignments"),
            ("192.0.2.10", "documentation"),
            ("192.168.1.1", "private"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.7", "documentation"),
            ("224.0.0.251", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "broadcast"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fc00::1", "unique local"),
            ("fd12:3456::1", "unique local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("100::1", "discard-only"),
            ("64:ff9b:1::1", "local-use NAT64"),
            ("2001:2::1", "benchmarking"),
            ("5f00::1", "segment routing"),
        ];
        for (address, what) in blocked {
            let refusal = default
                .judge(ip(address))
                .expect_err(&format!("{address} should be blocked"));
            assert!(
                refusal.rule.starts_with(what),
                "{address}: {}",
                refusal.rule
            );
        }
        for address in [
            "93.184.216.34",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "198.20.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
        ] {
            assert_eq!(default.judge(ip(address)), Ok(()), "{address} is public");
        }
    }

    #[test]
    fn ipv6_forms_are_judged_by_the_ipv4_address_they_embed() {
        let default = policy(&[], &[]);
        for blocked in [
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::",
            // Teredo: server 65.54.227.120 (public), client 127.0.0.1 inverted.
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
        ] {
            let refusal = default
                .judge(ip(blocked))
                .expect_err(&format!("{blocked} should be blocked"));
            assert!(
                refusal.rule.contains("embedded as"),
                "{blocked}: {}",
                refusal.rule
            );
        }
        for public in [
            "::ffff:93.184.216.34",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::1",
            "2001:0:4136:e378:8000:63bf:a247:27dd",
        ] {
            assert_eq!(
                default.judge(ip(public)),
                Ok(()),
                "{public} embeds a public address"
            );
        }
        assert_eq!(
            embedded_ipv4(ip("2001:0:4136:e378:8000:63bf:80ff:fffe")),
            [Ipv4Addr::new(65, 54, 227, 120), Ipv4Addr::new(127, 0, 0, 1)]
        );
    }

    #[test]
    fn allow_lifts_the_block_list_and_deny_wins_over_both() {
        let local = policy(&["127.0.0.1/32", "10.1.0.0/16"], &["10.1.2.0/24"]);
        assert_eq!(local.judge(ip("127.0.0.1")), Ok(()));
        assert_eq!(
            local.judge(ip("::ffff:127.0.0.1")),
            Ok(()),
            "mapped form of an allowed address"
        );
        assert!(
            local.judge(ip("127.0.0.2")).is_err(),
            "only the one address"
        );
        assert_eq!(local.judge(ip("10.1.9.9")), Ok(()));
        let denied = local.judge(ip("10.1.2.3")).expect_err("denied");
        assert_eq!(denied.rule, "network.deny 10.1.2.0/24");
        let public = policy(&[], &["93.184.216.0/24"]);
        assert!(
            public.judge(ip("93.184.216.34")).is_err(),
            "deny blocks public addresses too"
        );
        assert!(
            public.judge(ip("::ffff:93.184.216.34")).is_err(),
            "and their mapped forms"
        );
    }

    #[test]
    fn filtering_keeps_the_allowed_addresses_in_order_or_refuses_with_every_reason() {
        let default = policy(&[], &[]);
        let kept = default.filter(
            "mixed.example",
            [ip("10.0.0.1"), ip("93.184.216.34"), ip("1.1.1.1")],
        );
        assert_eq!(kept, Ok(vec![ip("93.184.216.34"), ip("1.1.1.1")]));
        let refused = default
            .filter("internal.example", [ip("10.0.0.1"), ip("::1")])
            .expect_err("all private");
        assert_eq!(refused.refusals.len(), 2);
        assert_eq!(
            refused.to_string(),
            "internal.example resolves only to addresses that are not allowed: \
             10.0.0.1 (private 10.0.0.0/8), ::1 (loopback ::1/128)"
        );
    }

    #[test]
    fn literal_ips_in_every_spelling_the_url_parser_accepts_are_judged() {
        let guard = Guard::new(&NetworkConfig::default());
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://[::1]:8080/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "https://169.254.169.254/latest/meta-data/",
            "http://0/",
        ] {
            assert!(
                guard.literal_blocked(url).is_some(),
                "{url} should be blocked"
            );
        }
        assert!(
            guard
                .literal_blocked("https://93.184.216.34/hook")
                .is_none()
        );
        assert!(
            guard.literal_blocked("https://example.com/hook").is_none(),
            "names need a lookup"
        );
    }

    /// Answers every name with fixed addresses and counts the lookups.
    struct FixedResolver {
        addresses: Vec<IpAddr>,
        lookups: std::sync::atomic::AtomicUsize,
    }

    impl Resolve for FixedResolver {
        fn resolve(
            &self,
            _host: &str,
        ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>> {
            self.lookups
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let addresses = self.addresses.clone();
            Box::pin(async move { Ok(addresses) })
        }
    }

    #[tokio::test]
    async fn a_url_is_refused_only_when_its_host_resolves_to_nothing_allowed() {
        let resolving_to = |addresses: Vec<IpAddr>| {
            Guard::with_resolver(
                &NetworkConfig::default(),
                Arc::new(FixedResolver {
                    addresses,
                    lookups: Default::default(),
                }),
            )
        };
        let private = resolving_to(vec![ip("10.0.0.5")]);
        let refused = private.check_url("https://internal.example/hook").await;
        assert!(refused.is_err_and(|b| b.host == "internal.example"));
        let mixed = resolving_to(vec![ip("10.0.0.5"), ip("93.184.216.34")]);
        assert_eq!(mixed.check_url("https://mixed.example/hook").await, Ok(()));
        let system = Guard::new(&NetworkConfig::default());
        assert_eq!(
            system
                .check_url("https://name-that-does-not-resolve.invalid/")
                .await,
            Ok(()),
            "DNS may come later"
        );
    }
}
