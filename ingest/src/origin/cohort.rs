//! A client's network cohort: what the playback log keeps instead of the
//! address (IPv4 /24, IPv6 /48), so requests can be grouped by network
//! without identifying anyone. Behind trusted proxies the client is the
//! right-most address of `X-Forwarded-For` that is not one of them: each
//! proxy appends the address it was reached from, so what lies left of
//! that is the client's own say and can be forged.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The cohort of a request's client: from `peer`, or from
/// `X-Forwarded-For` when `peer` is in `trusted`. A chain with an entry
/// that is not an address before the client is found is `unknown`.
pub(crate) fn client_cohort(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> String {
    let is_trusted = |addr: &IpAddr| trusted.iter().any(|net| net.contains(addr));
    let peer = peer.to_canonical();
    if !is_trusted(&peer) {
        return cohort(peer);
    }
    // Several headers count as one comma-separated list, in order.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("?").split(','))
        .map(str::trim)
        .filter(|hop| !hop.is_empty())
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(addr) = parse_hop(hop) else {
            return "unknown".to_owned();
        };
        client = addr;
        if !is_trusted(&addr) {
            break;
        }
    }
    cohort(client)
}

/// An address as proxies write it: `198.51.100.7`, `2001:db8::1`, with a
/// port (`198.51.100.7:4711`, `[2001:db8::1]:4711`) or bracketed.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let addr = hop
        .parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .or_else(|_| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or_default()
                .parse::<IpAddr>()
        })
        .ok()?;
    Some(addr.to_canonical())
}

/// The cohort of `addr` as CIDR text: `203.0.113.0/24` or `2001:db8:1::/48`.
/// IPv4-mapped IPv6 addresses count as IPv4.
fn cohort(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => v4_cohort(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_cohort(v4),
            None => {
                let s = v6.segments();
                format!("{}/48", Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
            }
        },
    }
}

fn v4_cohort(addr: Ipv4Addr) -> String {
    let [a, b, c, _] = addr.octets();
    format!("{}/24", Ipv4Addr::new(a, b, c, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(addr: &str) -> String {
        cohort(addr.parse().unwrap())
    }

    #[test]
    fn keeps_only_the_network() {
        assert_eq!(of("203.0.113.77"), "203.0.113.0/24");
        assert_eq!(of("127.0.0.1"), "127.0.0.0/24");
        assert_eq!(of("10.1.2.255"), "10.1.2.0/24");
        assert_eq!(of("2001:db8:1:2:3:4:5:6"), "2001:db8:1::/48");
        assert_eq!(of("2001:db8:abcd:ffff::1"), "2001:db8:abcd::/48");
        assert_eq!(of("::1"), "::/48");
        assert_eq!(of("::ffff:198.51.100.9"), "198.51.100.0/24");
    }

    fn behind(peer: &str, forwarded: &[&str], trusted: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        let trusted: Vec<IpNet> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        client_cohort(peer.parse().unwrap(), &headers, &trusted)
    }

    #[test]
    fn trusted_proxies_name_the_client() {
        let proxies = ["10.0.0.0/8", "2001:db8:ffff::/48"];
        // Not from a proxy: the header is the client's word, ignored.
        assert_eq!(
            behind("203.0.113.77", &["198.51.100.1"], &proxies),
            "203.0.113.0/24"
        );
        assert_eq!(behind("10.1.1.1", &["198.51.100.1"], &[]), "10.1.1.0/24");
        // Through two proxies; what the client put in front is ignored.
        assert_eq!(
            behind("10.0.0.2", &["192.0.2.9, 203.0.113.77, 10.0.0.1"], &proxies),
            "203.0.113.0/24"
        );
        assert_eq!(
            behind(
                "10.0.0.2",
                &["192.0.2.9", "203.0.113.77:4711", "10.0.0.1"],
                &proxies
            ),
            "203.0.113.0/24"
        );
        assert_eq!(
            behind("::ffff:10.0.0.2", &["[2001:db8:1:2::9]:443"], &proxies),
            "2001:db8:1::/48"
        );
        assert_eq!(
            behind("10.0.0.2", &["[2001:db8:5::1]"], &proxies),
            "2001:db8:5::/48"
        );
        // Only proxies: the left-most is as far as it goes.
        assert_eq!(
            behind("10.0.0.2", &["10.9.9.9, 10.0.0.1"], &proxies),
            "10.9.9.0/24"
        );
        // The proxy itself, without a header.
        assert_eq!(behind("10.0.0.2", &[], &proxies), "10.0.0.0/24");
        // Garbage where the client should be.
        assert_eq!(
            behind("10.0.0.2", &["203.0.113.77, nonsense"], &proxies),
            "unknown"
        );
        // Garbage left of the client does not matter.
        assert_eq!(
            behind("10.0.0.2", &["nonsense, 203.0.113.77"], &proxies),
            "203.0.113.0/24"
        );
    }

    #[test]
    fn no_host_bits_survive() {
        for addr in ["198.51.100.201", "2001:db8:1:2:aaaa:bbbb:cccc:dddd"] {
            let c = of(addr);
            assert!(
                !c.contains("201") && !c.contains("aaaa") && !c.contains(":2:"),
                "{c}"
            );
        }
    }
}
