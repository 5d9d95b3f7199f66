//! A client's network cohort: what the playback log keeps instead of the
//! address (IPv4 /24, IPv6 /48), so requests can be grouped by network
//! without identifying anyone.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The cohort of `addr` as CIDR text: `203.0.113.0/24` or `2001:db8:1::/48`.
/// IPv4-mapped IPv6 addresses count as IPv4.
pub(crate) fn cohort(addr: IpAddr) -> String {
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
